"""Static-analysis results as findings: ruff run on a checkout, and parsers for CI output.

The parsers are pure functions over the text a CI job leaves behind (``ruff --output-format json``,
``eslint -f json``, ``tsc``) and over check-run annotations, the fallback when no artifact exists.
Every lint finding has ``category`` = the tool and ``name`` = the rule.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

from codehealth.findings import Finding
from codehealth.untrusted import bounded_int, confined_path, json_loads
from codehealth.untrusted import text as text_of

ANNOTATIONS_PER_STEP = 10
FORMAT_RULE = "unformatted"  # the code ruff's formatter gives a file it would change
_TSC_LINE = re.compile(
    r"^(?P<path>[^\s(:][^(:]*?)(?:\((?P<line>\d+),(?P<col>\d+)\)|:(?P<line2>\d+):(?P<col2>\d+))\s*[:-]\s*"
    r"(?P<level>error|warning)\s+(?P<code>TS\d+):\s*(?P<message>.*)$"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _location(item: dict, key: str) -> dict:
    value = item.get(key)
    return value if isinstance(value, dict) else {}


def _refuse(refused: list | None, path: object) -> None:
    if refused is not None:
        refused.append(str(path)[:200])


def parse_ruff_json(
    text: str, *, root: str | Path | None = None, with_edits: bool = True, refused: list | None = None
) -> list[Finding]:
    """Findings from ``ruff check --output-format json``; ``fixable`` only for ruff's safe fixes.
    ``with_edits``: keep the fix's edits (only for ruff's own run on the checkout: a CI artifact's
    edits are somebody else's text, never applied by an auto-PR). Items whose path leaves the
    repository are refused (``codehealth.untrusted``), and their paths added to ``refused``."""
    findings = []
    items = json_loads(text or "[]")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        path = confined_path(item.get("filename", ""), root)
        if path is None:
            _refuse(refused, item.get("filename"))
            continue
        fix = item.get("fix") if isinstance(item.get("fix"), dict) else {}
        safe = fix.get("applicability") == "safe"
        edits = fix.get("edits") if with_edits and safe and isinstance(fix.get("edits"), list) else None
        location = _location(item, "location")
        findings.append(
            Finding(
                kind="lint",
                category="ruff",
                path=path,
                line=bounded_int(location.get("row")),
                name=text_of(item.get("code"), 300) or "syntax-error",
                confidence=100,
                reason=text_of(item.get("message")),
                fixable=safe,
                extra={"column": bounded_int(location.get("column")), "url": rule_url(item)}
                | ({"fix": text_of(fix.get("message"), 500)} if fix else {})
                # The safe fix's edits travel with the finding: an auto-PR applies exactly these.
                | ({"edits": edits} if edits else {}),
            )
        )
    return findings


def parse_eslint_json(
    text: str, *, root: str | Path | None = None, refused: list | None = None
) -> list[Finding]:
    """Findings from ``eslint -f json``; an autofix eslint offers counts as fixable."""
    findings = []
    results = json_loads(text or "[]")
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, dict):
            continue
        path = confined_path(result.get("filePath", ""), root)
        messages = result.get("messages")
        if path is None:
            _refuse(refused, result.get("filePath"))
        if path is None or not isinstance(messages, list):
            continue
        for message in messages:
            if not isinstance(message, dict):
                continue
            findings.append(
                Finding(
                    kind="lint",
                    category="eslint",
                    path=path,
                    line=bounded_int(message.get("line")),
                    name=text_of(message.get("ruleId"), 300) or "parse-error",
                    confidence=100,
                    reason=text_of(message.get("message")),
                    fixable="fix" in message,
                    extra={
                        "column": bounded_int(message.get("column")),
                        "severity": "error" if message.get("severity") == 2 else "warning",
                    }
                    | _eslint_url(message.get("ruleId")),
                )
            )
    return findings


def _eslint_url(rule: object) -> dict:
    """eslint's own rules have a page each; a plugin's rule (``plugin/rule``) is documented elsewhere."""
    if isinstance(rule, str) and re.fullmatch(r"[a-z][a-z0-9-]{0,80}", rule):
        return {"url": f"https://eslint.org/docs/latest/rules/{rule}"}
    return {}


def parse_tsc(text: str, *, root: str | Path | None = None, refused: list | None = None) -> list[Finding]:
    """Findings from ``tsc --noEmit`` output, plain (``a.ts(3,5): error TS…``) or pretty (``a.ts:3:5 - …``)."""
    findings = []
    for raw in (text or "").splitlines():
        match = _TSC_LINE.match(_ANSI.sub("", raw).strip())
        if not match:
            continue
        path = confined_path(match["path"].strip(), root)
        if path is None:
            _refuse(refused, match["path"])
            continue
        findings.append(
            Finding(
                kind="lint",
                category="tsc",
                path=path,
                line=bounded_int(int(match["line"] or match["line2"])),
                name=match["code"],
                confidence=100,
                reason=match["message"].strip(),
                extra={"column": bounded_int(int(match["col"] or match["col2"])), "severity": match["level"]},
            )
        )
    return findings


def parse_annotations(
    annotations: list[dict], *, tool: str = "ci", refused: list | None = None
) -> list[Finding]:
    """Check-run annotations (GitHub's wire format), at most ``ANNOTATIONS_PER_STEP``: GitHub itself
    keeps only the first ten per step, so more would be an illusion of completeness."""
    findings = []
    for item in annotations[:ANNOTATIONS_PER_STEP]:
        path = confined_path(item.get("path", ""), None)
        if path is None:
            _refuse(refused, item.get("path"))
            continue
        findings.append(
            Finding(
                kind="lint",
                category=tool,
                path=path,
                line=bounded_int(item.get("start_line")),
                name=text_of(item.get("title"), 300)
                or text_of(item.get("annotation_level"), 40)
                or "annotation",
                confidence=80,
                reason=text_of(item.get("message")),
                extra={"level": text_of(item.get("annotation_level"), 40)},
            )
        )
    return findings


def ruff_binary() -> str | None:
    """The ruff next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.exists() else shutil.which("ruff")


def _ruff_env() -> dict[str, str]:
    """No ``RUFF_`` setting from outside; a thread stack deep enough for a 20,000-term expression (ruff
    would overflow its default one and lose the whole run), on a bounded number of threads so the
    stacks fit in the sandbox's address space."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUFF_")}
    return env | {"RUST_MIN_STACK": str(64 * 1024 * 1024), "RAYON_NUM_THREADS": "4"}


# What a checkout's ruff configuration may say to the HQ's ruff: the rule selection, the files it
# leaves out, and the few scalar settings its checks and formatter read. Everything else (``fix``,
# ``unsafe-fixes``, ``extend`` to a file elsewhere, isort's ``required-imports``, plugins' settings) is
# never read: ruff runs ``--isolated`` and gets only these, as ``--config`` overrides.
# With no selection of its own, a checkout gets ruff's documented defaults, named here: the HQ's ruff
# is newer than many repositories and its built-in default may be wider than what they chose.
DEFAULT_SELECT = ("E4", "E7", "E9", "F")
# Ignores go first: ruff drops an ``ignore`` given before a later ``select`` override.
_RULE_LISTS = ("ignore", "extend-ignore", "select", "extend-select")
_RULE_CODE = re.compile(r"^(ALL|[A-Z]{1,8}[0-9]{0,4})$")
_GLOB = re.compile(r"^[^\x00-\x1f]{1,300}$")
_EXCLUDES = ("exclude", "extend-exclude")
_SCALARS = {
    "line-length": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 320,
    "indent-width": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16,
}
_FORMAT_SCALARS = {
    "quote-style": {"double", "single", "preserve"},
    "indent-style": {"space", "tab"},
    "line-ending": {"auto", "lf", "cr-lf", "native"},
    "skip-magic-trailing-comma": {True, False},
    "docstring-code-format": {True, False},
}
CONFIG_FILES = (("pyproject.toml", ("tool", "ruff")), ("ruff.toml", ()), (".ruff.toml", ()))


def _ruff_table(root: Path) -> dict:
    """The checkout's ruff settings (the first config file ruff itself would read), or {}."""
    for name, keys in reversed(CONFIG_FILES):  # ruff prefers .ruff.toml, then ruff.toml, then pyproject
        file = root / name
        if file.is_symlink() or not file.is_file():
            continue
        try:
            table = tomllib.loads(file.read_text(encoding="utf-8", errors="replace"))
        except (tomllib.TOMLDecodeError, OSError, RecursionError):
            return {}
        for key in keys:
            table = table.get(key) if isinstance(table, dict) else None
        if isinstance(table, dict):
            return table
    return {}


def _codes(value: object) -> list[str]:
    return (
        [c for c in value if isinstance(c, str) and _RULE_CODE.match(c)][:500]
        if isinstance(value, list)
        else []
    )


def _globs(value: object) -> list[str]:
    return (
        [g for g in value if isinstance(g, str) and _GLOB.match(g)][:200] if isinstance(value, list) else []
    )


def ruff_overrides(root: str | Path) -> list[str]:
    """``--config`` arguments carrying only the checkout's rule selection (ruff's defaults when it has
    none), the files it excludes, and safe scalar settings."""
    table = _ruff_table(Path(root))
    lint_table = table.get("lint") if isinstance(table.get("lint"), dict) else {}
    format_table = table.get("format") if isinstance(table.get("format"), dict) else {}
    args: list[str] = []
    for key in _RULE_LISTS:
        value = lint_table.get(key, table.get(key))
        if key == "select" and not isinstance(value, list):
            value = list(DEFAULT_SELECT)
        if isinstance(value, list):
            args += ["--config", f"lint.{key} = {json.dumps(_codes(value))}"]
    ignores = lint_table.get("per-file-ignores", table.get("per-file-ignores"))
    if isinstance(ignores, dict):
        per_file = {g: _codes(v) for g, v in list(ignores.items())[:200] if _globs([g])}
        table_text = ", ".join(f"{json.dumps(g)} = {json.dumps(c)}" for g, c in per_file.items())
        args += ["--config", f"lint.per-file-ignores = {{{table_text}}}"]
    for key in _EXCLUDES:  # excluded files only narrow what is checked
        if isinstance(table.get(key), list):
            args += ["--config", f"{key} = {json.dumps(_globs(table[key]))}"]
    for key, ok in _SCALARS.items():
        if ok(table.get(key)):
            args += ["--config", f"{key} = {json.dumps(table[key])}"]
    for key, allowed in _FORMAT_SCALARS.items():
        value = format_table.get(key)
        if isinstance(value, (str, bool)) and value in allowed:
            args += ["--config", f"format.{key} = {json.dumps(value)}"]
    return args


def rule_url(item: dict) -> str:
    """The rule's documentation page (ruff names it by the rule's name); "" for anything else, such as
    a syntax error or a link to elsewhere."""
    url = text_of(item.get("url"), 500)
    if not re.fullmatch(r"https://docs\.astral\.sh/ruff/rules/[a-z0-9-]+/?", url):
        return ""
    return url if url.endswith("/") else url + "/"


def _ruff(binary: str, root: Path, command: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ruff on ``root`` so that nothing in the checkout can make it write: ``--isolated`` (no
    configuration file is read; the rule selection comes in as ``--config``), no cache, and the
    caller's flags never fix in place."""
    return subprocess.run(  # noqa: S603 - the installed ruff, no shell; the checkout adds only vetted --config values
        [binary, *command, "--isolated", "--no-cache", *ruff_overrides(root), "."],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_ruff_env(),
        check=False,
    )


def formatter_configured(root: Path) -> bool:
    """Whether the checkout formats with ruff (a ``[tool.ruff.format]`` or a ruff.toml ``[format]``
    table): only then is "reformat" one of its own checks, and a fix it would accept."""
    for name, table in (
        ("pyproject.toml", "[tool.ruff.format]"),
        ("ruff.toml", "[format]"),
        (".ruff.toml", "[format]"),
    ):
        file = root / name
        try:
            if not file.is_symlink() and table in file.read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def run_ruff_format(root: str | Path, *, timeout: float = 300) -> list[Finding]:
    """One finding per file ruff's formatter would change, in a checkout that uses the formatter, with
    the formatter's own edits (``ruff format --check --output-format json``: computed, never written),
    so an auto-PR applies exactly what ``ruff format`` would. Nothing when the formatter is not the
    checkout's or cannot run."""
    root, binary = Path(root), ruff_binary()
    if not binary or not formatter_configured(root):
        return []
    try:
        done = _ruff(binary, root, ["format", "--check", "--output-format", "json"], timeout)
        found = parse_ruff_json(done.stdout, root=root) if done.returncode in (0, 1) else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    return [
        replace(f, reason="ruff format, with the repository's settings, would reformat this file")
        for f in found
        if f.name == FORMAT_RULE
    ]


def run_ruff(root: str | Path, *, timeout: float = 300) -> list[Finding] | None:
    """Run ruff on the checkout with its rule selection (``--no-fix``: fixes are only reported, with
    their edits); None when ruff could not run."""
    binary = ruff_binary()
    if not binary:
        return None
    root = Path(root)
    try:
        done = _ruff(binary, root, ["check", "--no-fix", "--output-format", "json", "--exit-zero"], timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        return parse_ruff_json(done.stdout, root=root)
    except ValueError:
        return None
