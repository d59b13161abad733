"""Dependency audit: declared packages, outdated ones and known vulnerabilities.

Manifests: ``pyproject.toml`` (PEP 621 and Poetry), ``requirements*.txt``, ``package.json``.
Outdated: the registries' JSON APIs (PyPI ``/pypi/<name>/json``, npm ``/<name>``) through a fetcher the
caller supplies, behind a cache. Vulnerabilities: an OSV-format advisory snapshot (a JSON list of OSV
records), matched by ``ECOSYSTEM``/``SEMVER`` ranges and explicit version lists. A part that could not run
(no fetcher, no snapshot) says "not run"; it is never reported as clean.
"""

import json
import re
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from codehealth.findings import Finding
from codehealth.stale_refs import iter_files
from codehealth.untrusted import json_loads

PYPI_URL = "https://pypi.org/pypi"  # + /<name>/json
NPM_URL = "https://registry.npmjs.org"  # + /<name>
# What PyPI and npm accept as a name (npm: an optional @scope/); anything else in a manifest is not asked.
PACKAGE_NAME_RE = re.compile(r"(@[A-Za-z0-9~][A-Za-z0-9._~-]*/)?[A-Za-z0-9~_][A-Za-z0-9._~-]{0,213}")
ADVISORY_FILES = ("osv.json", ".osv.json", "advisories.json")
PROBE = 3  # packages asked first, one by one: a registry that answers none of them is down
REGISTRY_WORKERS = 8  # registry asks in flight at once after that
Fetcher = Callable[[str], dict | None]  # URL -> parsed JSON, None when unreachable or unknown
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;#]*)")


@dataclass(frozen=True)
class Dependency:
    ecosystem: str  # "PyPI" or "npm" (OSV's names)
    name: str
    spec: str  # as declared: "==4.2.1", ">=5", "^18.2.0"
    version: str | None  # the pinned or lowest allowed version, None when unbounded
    path: str
    line: int | None


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)  # part -> "ok" | "not run: <why>"

    def ran(self, part: str) -> bool:
        return self.status.get(part) == "ok"


def _lowest(spec: str) -> str | None:
    match = re.search(r"(?:===|==|~=|>=|\^|~|=)?\s*v?(\d+(?:\.\d+)*(?:[-.+]?[0-9A-Za-z.]+)?)", spec or "")
    if not match or re.match(r"\s*(<|!=)", spec or ""):
        return None
    return match.group(1)


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if re.search(rf"""(^|["'\s]){re.escape(needle)}(["'\s\[=<>~!^:;]|$)""", line, re.I):
            return number
    return None


def parse_requirements(text: str, path: str = "requirements.txt") -> list[Dependency]:
    deps = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #")[0].strip()
        if not line or line.startswith(("#", "-", "git+", "http")):
            continue
        match = _REQ.match(line)
        if match:
            spec = match.group(2).strip()
            deps.append(Dependency("PyPI", match.group(1).lower(), spec, _lowest(spec), path, number))
    return deps


def parse_pyproject(text: str, path: str = "pyproject.toml") -> list[Dependency]:
    data = tomllib.loads(text)
    project = data.get("project", {})
    lines = [*project.get("dependencies", [])]
    for group in project.get("optional-dependencies", {}).values():
        lines.extend(group)
    for group in data.get("dependency-groups", {}).values():
        lines.extend(x for x in group if isinstance(x, str))
    deps = []
    for requirement in lines:
        match = _REQ.match(requirement)
        if match:
            spec = match.group(2).strip()
            deps.append(
                Dependency(
                    "PyPI", match.group(1).lower(), spec, _lowest(spec), path, _line_of(text, match.group(1))
                )
            )
    poetry = data.get("tool", {}).get("poetry", {})
    for table in (poetry.get("dependencies", {}), poetry.get("dev-dependencies", {})):
        for name, spec in table.items():
            if name.lower() == "python":
                continue
            spec = (
                spec if isinstance(spec, str) else (spec.get("version", "") if isinstance(spec, dict) else "")
            )
            deps.append(Dependency("PyPI", name.lower(), spec, _lowest(spec), path, _line_of(text, name)))
    return deps


def parse_package_json(text: str, path: str = "package.json") -> list[Dependency]:
    data = json_loads(text)  # the repository's own file: untrusted numbers and nesting refused
    if not isinstance(data, dict):
        raise ValueError("package.json is not an object")
    deps = []
    for table in ("dependencies", "devDependencies", "optionalDependencies"):
        entries = data.get(table)
        for name, spec in (entries if isinstance(entries, dict) else {}).items():
            local = str(spec).startswith(("file:", "link:", "workspace:", "git", "http"))
            deps.append(
                Dependency(
                    "npm",
                    name,
                    spec,
                    None if local else _lowest(str(spec)),
                    path,
                    _line_of(text, f'"{name}"'.strip('"')),
                )
            )
    return deps


def declared_dependencies(root: Path | str) -> list[Dependency]:
    """Every dependency declared by a manifest anywhere in the checkout."""
    root = Path(root)
    deps = []
    for file in iter_files(root):
        rel = file.relative_to(root).as_posix()
        try:
            if file.name == "pyproject.toml":
                deps += parse_pyproject(file.read_text(encoding="utf-8"), rel)
            elif file.name == "package.json":
                deps += parse_package_json(file.read_text(encoding="utf-8"), rel)
            elif re.fullmatch(r"requirements[\w.-]*\.(txt|in)", file.name):
                deps += parse_requirements(file.read_text(encoding="utf-8"), rel)
        except (ValueError, tomllib.TOMLDecodeError, UnicodeDecodeError, OSError, RecursionError):
            continue
    return deps


def parse_version(text: str):
    """A comparable version; npm's ``1.2.3-beta.1`` and PyPI's ``1.2.3b1`` both parse."""
    try:
        return Version(text)
    except InvalidVersion:
        numbers = [int(n) for n in re.findall(r"\d+", text)[:4]] or [0]
        return Version(".".join(map(str, numbers)))


def version_affected(version: str, affected: dict) -> bool:
    """Whether ``version`` falls in one OSV ``affected`` entry (its versions list or its ranges)."""
    if version in (affected.get("versions") or []):
        return True
    current = parse_version(version)
    for rng in affected.get("ranges") or []:
        if rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue  # GIT ranges name commits, not versions
        inside = False
        events = rng.get("events") or []
        for event in sorted(events, key=lambda e: parse_version(next(iter(e.values()), "0") or "0")):
            if "introduced" in event:
                if current >= parse_version(event["introduced"] or "0"):
                    inside = True
            elif "fixed" in event:
                if current >= parse_version(event["fixed"]):
                    inside = False
            elif "last_affected" in event:
                if current > parse_version(event["last_affected"]):
                    inside = False
            elif "limit" in event and current >= parse_version(event["limit"]):
                inside = False
        if inside:
            return True
    return False


def _fixed_in(affected: dict) -> str | None:
    for rng in affected.get("ranges") or []:
        for event in rng.get("events") or []:
            if "fixed" in event:
                return event["fixed"]
    return None


def load_advisories(path: Path | str) -> list[dict]:
    """An OSV snapshot: a JSON list of records (or ``{"vulns": [...]}``, the querybatch shape)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return data.get("vulns", []) if isinstance(data, dict) else data


def _normal(ecosystem: str, name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower() if ecosystem == "PyPI" else name


def vulnerabilities(deps: list[Dependency], advisories: list[dict]) -> list[Finding]:
    """Dependencies whose declared version an advisory covers."""
    by_package: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for record in advisories:
        for affected in record.get("affected") or []:
            package = affected.get("package") or {}
            key = (
                package.get("ecosystem", ""),
                _normal(package.get("ecosystem", ""), package.get("name", "")),
            )
            by_package.setdefault(key, []).append((record, affected))
    findings = []
    for dep in deps:
        if not dep.version:
            continue
        for record, affected in by_package.get((dep.ecosystem, _normal(dep.ecosystem, dep.name)), []):
            if not version_affected(dep.version, affected):
                continue
            fixed = _fixed_in(affected)
            aliases = [a for a in record.get("aliases") or [] if a.startswith("CVE-")]
            findings.append(
                Finding(
                    kind="dependency",
                    category="vulnerable",
                    path=dep.path,
                    line=dep.line,
                    name=dep.name,
                    confidence=95 if "==" in dep.spec or dep.ecosystem == "npm" else 70,
                    reason=f"{dep.name} {dep.version} is affected by {record.get('id')}"
                    + (f" ({', '.join(aliases)})" if aliases else "")
                    + (f": {record['summary']}" if record.get("summary") else "")
                    + (f"; fixed in {fixed}" if fixed else "; no fixed version yet"),
                    extra={
                        "advisory": record.get("id"),
                        "aliases": aliases,
                        "fixed": fixed,
                        "ecosystem": dep.ecosystem,
                        "version": dep.version,
                    },
                )
            )
    return findings


class RegistryCache:
    """Registry answers kept for ``ttl`` seconds, in memory and optionally in a JSON file."""

    def __init__(self, path: Path | str | None = None, *, ttl: float = 86400, clock=time.time):
        self.path, self.ttl, self.clock = (Path(path) if path else None), ttl, clock
        self.entries: dict[str, tuple[float, dict | None]] = {}
        if self.path and self.path.exists():
            try:
                self.entries = {k: tuple(v) for k, v in json.loads(self.path.read_text()).items()}
            except (ValueError, OSError):
                self.entries = {}

    def fetch(self, url: str, fetcher: Fetcher) -> dict | None:
        hit = self.entries.get(url)
        if hit and self.clock() - hit[0] < self.ttl:
            return hit[1]
        data = fetcher(url)
        if data is not None:
            self.entries[url] = (self.clock(), data)
        return data

    def save(self) -> None:
        """Write the answers to the file (once per audit, not once per package)."""
        if self.path:
            self.path.write_text(json.dumps(self.entries))


def registry_url(dep: Dependency, *, pypi: str = PYPI_URL, npm: str = NPM_URL) -> str:
    """Where a registry describes ``dep``. The name comes from a manifest, so it is one quoted path
    segment (no ``../``, ``?`` or ``#`` of its own); a scoped npm name keeps its ``@``."""
    if dep.ecosystem == "PyPI":
        return f"{pypi.rstrip('/')}/{quote(dep.name, safe='')}/json"
    return f"{npm.rstrip('/')}/{quote(dep.name, safe='@')}"


def latest_version(
    dep: Dependency, fetcher: Fetcher, cache: RegistryCache | None = None, urls: dict[str, str] | None = None
) -> str | None:
    """The registry's newest release of ``dep``; None when the registry could not be asked (or the name
    is no package name any registry serves: it is not sent)."""
    if not PACKAGE_NAME_RE.fullmatch(dep.name):
        return None
    url = registry_url(dep, **(urls or {}))
    data = cache.fetch(url, fetcher) if cache else fetcher(url)
    if not data:
        return None
    if dep.ecosystem == "PyPI":
        return (data.get("info") or {}).get("version")
    return (data.get("dist-tags") or {}).get("latest")


def outdated(
    deps: list[Dependency],
    fetcher: Fetcher,
    cache: RegistryCache | None = None,
    urls: dict[str, str] | None = None,
    *,
    workers: int = REGISTRY_WORKERS,
) -> tuple[list[Finding], list[str]]:
    """Dependencies behind the registry's latest release, and the names the registry did not answer for.

    The first ``PROBE`` packages are asked one by one: a registry that answers none of them is down, and
    the rest are not asked. The rest are asked ``workers`` at a time (``fetcher`` must allow that)."""
    wanted = [dep for dep in deps if dep.version]
    probe, rest = wanted[:PROBE], wanted[PROBE:]
    versions = {dep: latest_version(dep, fetcher, cache, urls) for dep in probe}
    if len(probe) == PROBE and not any(versions.values()):
        versions |= dict.fromkeys(rest)
    elif rest:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            versions |= zip(
                rest, pool.map(lambda dep: latest_version(dep, fetcher, cache, urls), rest), strict=True
            )
    if cache:
        cache.save()
    findings, unanswered = [], []
    for dep in wanted:
        latest = versions[dep]
        if latest is None:
            unanswered.append(dep.name)
            continue
        if parse_version(latest) > parse_version(dep.version):
            major = parse_version(latest).major > parse_version(dep.version).major
            findings.append(
                Finding(
                    kind="dependency",
                    category="outdated",
                    path=dep.path,
                    line=dep.line,
                    name=dep.name,
                    confidence=100,
                    reason=f"{dep.name} {dep.spec or dep.version} is behind the latest {latest}"
                    + (" (a new major version)" if major else ""),
                    extra={
                        "current": dep.version,
                        "latest": latest,
                        "major": major,
                        "ecosystem": dep.ecosystem,
                    },
                )
            )
    return findings, unanswered


def audit_dependencies(
    root: Path | str,
    *,
    advisories: list[dict] | Path | str | None = None,
    fetcher: Fetcher | None = None,
    cache: RegistryCache | None = None,
    urls: dict[str, str] | None = None,
) -> AuditResult:
    """Vulnerabilities (from ``advisories``, else a snapshot file in the checkout) and, with a
    ``fetcher``, outdated packages (``urls``: the registries' base URLs, ``pypi`` and ``npm``). Each part's
    status is "ok" or "not run: <why>"."""
    root = Path(root)
    result = AuditResult()
    deps = declared_dependencies(root)
    if advisories is None:
        snapshot = next((root / n for n in ADVISORY_FILES if (root / n).is_file()), None)
        advisories = snapshot
    if isinstance(advisories, (str, Path)):
        try:
            advisories = load_advisories(advisories)
        except (OSError, ValueError) as exc:
            result.status["vulnerabilities"] = (
                f"not run: advisory snapshot unreadable ({exc.__class__.__name__})"
            )
            advisories = None
    if advisories is not None:
        result.findings += vulnerabilities(deps, advisories)
        result.status["vulnerabilities"] = "ok"
    else:
        result.status.setdefault("vulnerabilities", "not run: no advisory snapshot")
    if fetcher is None:
        result.status["outdated"] = "not run: registries not consulted (offline)"
    else:
        found, unanswered = outdated(deps, fetcher, cache, urls)
        result.findings += found
        if unanswered and len(unanswered) == len([d for d in deps if d.version]):
            result.status["outdated"] = "not run: no registry answered"
        elif unanswered:
            result.status["outdated"] = f"partial: no answer for {', '.join(sorted(unanswered)[:10])}"
        else:
            result.status["outdated"] = "ok"
    return result


def not_run_findings(result: AuditResult) -> list[Finding]:
    """One finding per audit part that did not run, so no report can read its silence as clean."""
    return [
        Finding(
            kind="dependency",
            category="not_run",
            path="",
            line=None,
            name=part,
            confidence=100,
            reason=f"dependency audit ({part}) {status}",
        )
        for part, status in sorted(result.status.items())
        if status != "ok"
    ]
