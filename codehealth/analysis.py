"""A scan's analysis of a checkout, run in the sandbox (``codehealth.sandbox``), and what comes back.

An analyser is ``analyse(path) -> list[Finding]``, by default ``codehealth.scan.scan_path`` with the
HQ's settings; it runs in the child on the scratch copy. What the child answers is data: every finding
is rebuilt from it and its path confined to the repository (``codehealth.untrusted``); one that leaves
is refused, and counted in the scan's notes.
"""

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from functools import partial
from pathlib import Path

from django.conf import settings

from codehealth import sources
from codehealth.errors import CodehealthError
from codehealth.findings import Finding
from codehealth.sandbox import sandbox_run
from codehealth.untrusted import bounded_int, confined_path

Analyser = Callable[[Path], list[Finding]]
_FIELDS = {f.name for f in fields(Finding)}


def default_analyse(
    path: Path,
    *,
    schema: dict | None = None,
    skip: tuple[str, ...] = (),
    cache=None,
    advisories: list[dict] | None = None,
) -> list[Finding]:
    """Every analyser of ``codehealth.scan`` with the HQ's settings (in the child: the registry answers
    it fetches stay in ``cache``, which the parent saves; ``advisories`` were read by the parent)."""
    from codehealth.findings import KINDS
    from codehealth.scan import scan_path

    return scan_path(
        path,
        kinds=[k for k in KINDS if k not in skip],
        schema=schema,
        advisories=advisories,
        fetcher=sources.registry_fetcher() if cache is not None else None,
        cache=cache,
        registry_urls={"pypi": settings.CODEHEALTH_PYPI_URL, "npm": settings.CODEHEALTH_NPM_URL},
    )


def _advisories() -> list[dict] | None:
    """The HQ's snapshot, read here: the child, once it gives up the HQ's user, may not read it."""
    from codehealth.dependencies import load_advisories

    snapshot = Path(settings.CODEHEALTH_OSV_SNAPSHOT) if settings.CODEHEALTH_OSV_SNAPSHOT else None
    if not snapshot or not snapshot.is_file():
        return None
    try:
        return load_advisories(snapshot)
    except (OSError, ValueError):
        return None


def _registry_cache():
    from codehealth import dependencies

    if not settings.CODEHEALTH_REGISTRY_LOOKUPS:
        return None
    file = Path(settings.CODEHEALTH_CLONE_DIR) / "registry-cache.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    return dependencies.RegistryCache(file, ttl=settings.CODEHEALTH_REGISTRY_CACHE_HOURS * 3600)


def checkout_analyse(
    path: Path,
    *,
    analyse: Analyser | None = None,
    schema: dict | None = None,
    skip: tuple[str, ...] = (),
    deadline: float | None = None,
    beat: Callable[[], None] | None = None,
) -> tuple[list[Finding], dict]:
    """The findings of the checkout at ``path`` (and the scan's notes), every analyser in the sandbox
    within ``deadline`` (a ``time.monotonic()`` instant; default ``CODEHEALTH_SCAN_TIMEOUT_SECONDS``
    from now), ``beat`` called while the sandbox runs (the scan's heartbeat)."""
    deadline = deadline or time.monotonic() + settings.CODEHEALTH_SCAN_TIMEOUT_SECONDS
    notes: dict = {}
    cache = None
    if analyse is None:
        notes |= _advisories_refresh(path, deadline, beat)
        cache = _registry_cache()
        if cache is not None:
            cache.path = None  # the child cannot write the HQ's file: the parent saves what it brings
        analyse = partial(default_analyse, schema=schema, skip=skip, cache=cache, advisories=_advisories())

    def work(copy: Path) -> dict:
        return {
            "findings": analyse(copy),
            "registry": cache.entries if cache is not None else None,
            "lines": code_lines(copy),
        }

    answer = sandbox_run(path, work, deadline=deadline, beat=beat)
    if not isinstance(answer, dict) or not isinstance(answer.get("findings"), list):
        raise CodehealthError("scan_failed", "the analysis answered something unreadable", status=502)
    if cache is not None and isinstance(answer.get("registry"), dict):
        _registry_save(answer["registry"])
    findings, refused = findings_from(answer["findings"])
    if refused:
        notes["refused"] = refused
    lines = bounded_int(answer.get("lines"))
    if lines is not None:
        notes["lines"] = lines  # what the score's density is measured against
    return findings, notes


CODE_SUFFIXES = (".py", ".pyi", ".js", ".jsx", ".ts", ".tsx", ".mjs", ".vue")


def code_lines(root: Path) -> int:
    """Lines of code the analysers read (Python and frontend sources, outside vendored and generated
    directories): the size a score's density is measured against."""
    from codehealth.stale_refs import iter_files

    total = 0
    for file in iter_files(root):
        if file.suffix in CODE_SUFFIXES and ".min." not in file.name:
            with contextlib.suppress(OSError), file.open("rb") as handle:
                total += sum(1 for _ in handle)
    return total


def _advisories_refresh(path: Path, deadline: float, beat: Callable[[], None] | None) -> dict:
    """Refresh the OSV snapshot for the packages the checkout declares: read in the sandbox, asked for
    and written here (the snapshot is the HQ's file)."""
    if not (
        settings.CODEHEALTH_REGISTRY_LOOKUPS
        and settings.CODEHEALTH_OSV_SNAPSHOT
        and settings.CODEHEALTH_OSV_URL
    ):
        return {}
    from codehealth.dependencies import Dependency, declared_dependencies

    declared = sandbox_run(path, declared_dependencies, deadline=deadline, beat=beat)
    deps = []
    for item in declared if isinstance(declared, list) else []:
        try:
            deps.append(Dependency(**item))
        except TypeError:
            continue
    return sources.advisories_refresh(deps)


def _registry_save(entries: dict) -> None:
    cache = _registry_cache()
    if cache is None:
        return
    for url, entry in entries.items():
        if isinstance(url, str) and isinstance(entry, list) and len(entry) == 2:
            cache.entries[url] = tuple(entry)
    with contextlib.suppress(OSError):  # a cache that cannot be written is asked again next time
        cache.save()


def findings_from(items: list) -> tuple[list[Finding], int]:
    """Findings rebuilt from the child's answer, and how many were refused (malformed, or a path out of
    the repository)."""
    findings, refused = [], 0
    for item in items:
        finding = _finding(item) if isinstance(item, dict) else None
        if finding is None:
            refused += 1
        else:
            findings.append(finding)
    return findings, refused


def _finding(item: dict) -> Finding | None:
    if not _FIELDS.issuperset(item) or not all(
        isinstance(item.get(k), str) for k in ("kind", "category", "name", "reason")
    ):
        return None
    path = confined_path(item.get("path", ""))
    if path is None:
        return None
    line = item.get("line")
    return Finding(
        **{
            **item,
            "path": path,
            "line": bounded_int(line) if line is not None else None,
            "confidence": bounded_int(item.get("confidence"), high=100) or 0,
            "fixable": item.get("fixable") is True,
            "extra": item.get("extra") if isinstance(item.get("extra"), dict) else {},
        }
    )


def confine(findings: list[Finding]) -> tuple[list[Finding], int]:
    """Findings from outside the sandbox (CI artifacts, annotations) through the same check."""
    return findings_from([asdict(f) for f in findings])
