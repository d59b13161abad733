"""Stale-code detection: recall and precision on dead code planted in real Django projects, next to vulture.

Each project (a wheel or sdist from PyPI, unpacked into a scratch directory outside the repository, plus
this project's own checkout) gets N dead items of every category planted by a deterministic script
(seeded; the planting code is below). Both analysers then run on the same planted copy in the same run:

- recall: planted items found / planted items (vulture cannot see routes, templates or files: those count
  as missed for it; its "unused function" on a planted tool counts as found);
- precision: planted items found / all findings outside the planted files. Findings that predate the
  planting count as false alarms for both tools, so the figure is a floor: some of them are real dead code;
- time per 10k lines of Python.

    BENCH_DIR=/work/scratch-chanalysis .venv/bin/python tests/bench/bench_stale.py [archive.whl ...]

Without archives it unpacks every ``*.whl``/``*.tar.gz`` in ``$BENCH_DIR/dl`` (fetch them with
``pip download --no-deps django-debug-toolbar django-extensions django-filter -d $BENCH_DIR/dl``).
vulture is installed for this benchmark only: ``pip install -e '.[bench]'``.
"""

import ast
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from codehealth.stale import find_stale  # noqa: E402
from codehealth.stale_refs import build_index, iter_files  # noqa: E402

PER_CATEGORY = int(os.environ.get("PLANT_PER_CATEGORY", "5"))
SEED = 20261202
CATEGORIES = ("import", "variable", "function", "class", "method", "route", "template", "file", "tool")


def unpack(archive: Path, into: Path) -> Path:
    target = into / archive.name.split(".tar.gz")[0].removesuffix(".whl")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            z.extractall(target)
    else:
        with tarfile.open(archive) as t:
            t.extractall(target, filter="data")
    return target


def _candidates(root: Path) -> list[Path]:
    files = []
    for file in iter_files(root):
        rel = file.relative_to(root).as_posix()
        if file.suffix != ".py" or file.name == "__init__.py" or re.search(r"(^|/)(tests?|migrations)/", rel):
            continue
        if file.name.startswith("test") or "dist-info" in rel:
            continue
        try:
            ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        files.append(file)
    return sorted(files)


def _insert(file: Path, line_index: int, text: str) -> None:
    lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(line_index, text)
    file.write_text("".join(lines), encoding="utf-8")


def plant(root: Path, rng: random.Random) -> tuple[list[tuple[str, str, str]], set[str]]:
    """Plant PER_CATEGORY dead items of each category; returns (category, name, path) and the new files."""
    planted, new_files = [], set()
    modules = _candidates(root)
    for k in range(PER_CATEGORY):
        tag = f"p{k}q"
        target = rng.choice(modules)
        rel = target.relative_to(root).as_posix()
        with target.open("a", encoding="utf-8") as f:
            f.write(f"\n\nimport textwrap as textwrap_{tag}\n")
        planted.append(("import", f"textwrap_{tag}", rel))

        target = rng.choice(modules)
        with target.open("a", encoding="utf-8") as f:
            f.write(f"\n\ndef compute_{tag}_total(values):\n    return sum(values)\n")
        planted.append(("function", f"compute_{tag}_total", target.relative_to(root).as_posix()))

        target = rng.choice(modules)
        with target.open("a", encoding="utf-8") as f:
            f.write(f"\n\nclass Record{tag.upper()}:\n    size = 1\n")
        planted.append(("class", f"Record{tag.upper()}", target.relative_to(root).as_posix()))

        target = rng.choice(modules)
        with target.open("a", encoding="utf-8") as f:
            f.write(f"\n\n@tool\ndef lookup_{tag}(query: str) -> dict:\n    return {{}}\n")
        planted.append(("tool", f"lookup_{tag}", target.relative_to(root).as_posix()))

        for category in ("variable", "method"):
            for _attempt in range(50):
                target = rng.choice(modules)
                tree = ast.parse(target.read_text(encoding="utf-8"))
                if category == "variable":
                    nodes = [
                        n
                        for n in ast.walk(tree)
                        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and n.body
                        and n.body[0].lineno > n.lineno
                        and "\\" not in ast.unparse(n.body[0])[:1]
                    ]
                else:
                    nodes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.end_lineno]
                if not nodes:
                    continue
                node = rng.choice(nodes)
                if category == "variable":
                    first = node.body[0]
                    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                        if len(node.body) == 1:
                            continue
                        first = node.body[1]
                    indent = " " * first.col_offset
                    # above the statement's decorators, if it has any (between them and the def is no place)
                    line = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", []))])
                    _insert(target, line - 1, f"{indent}unused_{tag} = len('x')\n")
                    name = f"unused_{tag}"
                else:
                    indent = " " * node.body[0].col_offset
                    _insert(
                        target,
                        node.end_lineno,
                        f"\n{indent}def refresh_{tag}(self):\n{indent}    return None\n",
                    )
                    name = f"{node.name}.refresh_{tag}"
                planted.append((category, name, target.relative_to(root).as_posix()))
                break

        package = modules[rng.randrange(len(modules))].parent
        helper = package / f"planted_helpers_{tag}.py"
        helper.write_text(f"def helper_{tag}():\n    return 1\n", encoding="utf-8")
        new_files.add(helper.relative_to(root).as_posix())
        planted.append(
            ("file", module_dotted(helper.relative_to(root).as_posix()), helper.relative_to(root).as_posix())
        )

        template_dirs = sorted({p for p in root.rglob("templates") if p.is_dir()})
        base = template_dirs[rng.randrange(len(template_dirs))] if template_dirs else package / "templates"
        page = base / "planted" / f"page_{tag}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("<p>never rendered</p>\n", encoding="utf-8")
        planted.append(("template", page.relative_to(base).as_posix(), page.relative_to(root).as_posix()))

        urlconfs = sorted(p for p in root.rglob("urls.py") if "urlpatterns" in p.read_text(encoding="utf-8"))
        if urlconfs:
            urls = urlconfs[rng.randrange(len(urlconfs))]
            with urls.open("a", encoding="utf-8") as f:
                f.write(
                    f"\n\nfrom django.urls import path  # noqa: E402,F811\n\n"
                    f"urlpatterns += [path('zz-{tag}/', lambda request: None, name='route-{tag}')]\n"
                )
            planted.append(("route", f"route-{tag}", urls.relative_to(root).as_posix()))
    return planted, new_files


def module_dotted(rel: str) -> str:
    return rel[:-3].replace("/", ".").removeprefix("src.")


def run_ours(root: Path) -> tuple[list[tuple[str, str, str]], float]:
    started = time.perf_counter()
    findings = find_stale(root)
    return [(f.category, f.name, f.path) for f in findings], time.perf_counter() - started


_VULTURE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): unused (?P<what>[\w ]+?) '(?P<name>[^']+)'")


def run_vulture(root: Path) -> tuple[list[tuple[str, str, str]], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "vulture", "."], cwd=root, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    found = []
    for line in done.stdout.splitlines():
        match = _VULTURE.match(line)
        if match:
            found.append((match["what"], match["name"], match["path"].removeprefix("./")))
    return found, elapsed


def score(planted, found, new_files) -> tuple[dict[str, int], int, int, list]:
    """Found per category, true positives, false alarms (findings outside planted items and files) and
    the planted items missed."""
    hits: dict[str, int] = {c: 0 for c in CATEGORIES}
    matched, missed = set(), []
    for category, name, path in planted:
        short = name.rsplit(".", 1)[-1]
        for i, (_what, fname, fpath) in enumerate(found):
            if (fname == name or fname.rsplit(".", 1)[-1] == short or fname == name.rsplit("/", 1)[-1]) and (
                fpath == path or category in ("file", "template")
            ):
                hits[category] += 1
                matched.add(i)
                break
        else:
            missed.append((category, name, path))
    false = sum(
        1
        for i, (_w, name, path) in enumerate(found)
        if i not in matched and path not in new_files and not re.search(r"p\dq", name)
    )
    return hits, sum(hits.values()), false, missed


def python_lines(root: Path) -> int:
    return build_index(root).lines


def bench(label: str, source: Path, scratch: Path) -> dict:
    work = scratch / "planted" / label
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source, work, ignore=shutil.ignore_patterns(".git", ".venv", "node_modules", "*.pyc"))
    planted, new_files = plant(work, random.Random(f"{SEED}-{label}"))
    lines = python_lines(work)
    ours, ours_time = run_ours(work)
    theirs, their_time = run_vulture(work)
    row = {"label": label, "lines": lines, "planted": len(planted)}
    for tool, found, elapsed in (("ours", ours, ours_time), ("vulture", theirs, their_time)):
        hits, tp, false, missed = score(planted, found, new_files)
        row[tool] = {
            "hits": hits,
            "recall": tp / len(planted),
            "precision": tp / max(1, tp + false),
            "false": false,
            "per10k": elapsed / max(1, lines) * 10_000,
            "missed": missed,
        }
    row["by_category"] = {c: sum(1 for p in planted if p[0] == c) for c in CATEGORIES}
    return row


def main() -> None:
    scratch = Path(os.environ.get("BENCH_DIR", "/tmp/bench-stale"))
    archives = [Path(a) for a in sys.argv[1:]] or sorted(
        [*(scratch / "dl").glob("*.whl"), *(scratch / "dl").glob("*.tar.gz")]
    )
    sources = [(a.name.split("-")[0], unpack(a, scratch / "src")) for a in archives]
    own = scratch / "src" / "juggernaut-hq"
    if own.exists():
        shutil.rmtree(own)
    own.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(own)], input=archive, check=True)
    shutil.rmtree(own / "tests" / "codehealth" / "fixtures", ignore_errors=True)
    sources.append(("this project", own))
    rows = [bench(label, path, scratch) for label, path in sources]
    print(f"\nStale detection, {PER_CATEGORY} planted items per category and project (seed {SEED})\n")
    print(
        f"{'project':<22}{'py lines':>9}{'planted':>8} | {'ours R':>7}{'P':>6}{'FA':>5}{'s/10k':>7} | "
        f"{'vulture R':>9}{'P':>6}{'FA':>6}{'s/10k':>7}"
    )
    totals = {"ours": [0, 0, 0.0, 0], "vulture": [0, 0, 0.0, 0]}
    for row in rows:
        o, v = row["ours"], row["vulture"]
        print(
            f"{row['label']:<22}{row['lines']:>9}{row['planted']:>8} | {o['recall']:>7.0%}{o['precision']:>6.0%}"
            f"{o['false']:>5}{o['per10k']:>7.2f} | {v['recall']:>9.0%}{v['precision']:>6.0%}{v['false']:>6}"
            f"{v['per10k']:>7.2f}"
        )
        for tool in totals:
            totals[tool][0] += sum(row[tool]["hits"].values())
            totals[tool][1] += row[tool]["false"]
            totals[tool][2] += row[tool]["per10k"] * row["lines"] / 10_000
            totals[tool][3] += row["lines"]
    planted = sum(r["planted"] for r in rows)
    print("\nRecall by category (found / planted, all projects):")
    for category in CATEGORIES:
        n = sum(r["by_category"][category] for r in rows)
        print(
            f"  {category:<10} ours {sum(r['ours']['hits'][category] for r in rows):>3}/{n:<3}"
            f" vulture {sum(r['vulture']['hits'][category] for r in rows):>3}/{n}"
        )
    for tool, (tp, false, seconds, lines) in totals.items():
        print(
            f"\n{tool:<8} recall {tp / planted:.1%}  precision {tp / max(1, tp + false):.1%} "
            f"(false alarms {false})  {seconds / lines * 10_000:.3f} s per 10k lines",
            end="",
        )
    print("\nPlanted items this analysis missed:")
    for row in rows:
        for category, name, path in row["ours"]["missed"]:
            print(f"  {row['label']:<22} {category:<9} {name} ({path})")
    print()


if __name__ == "__main__":
    main()
