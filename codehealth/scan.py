"""One entry point over every analyser: ``scan_path`` for a local checkout, offline.

The command and the services both call this; the services add what needs the network or the database
(CI artifacts, registries, tool executions) by calling the analysers' own functions with those inputs.
"""

from pathlib import Path

from codehealth import contracts, dependencies, lint, stale
from codehealth.findings import KINDS, Finding
from codehealth.stale_refs import iter_files


def _frontend_roots(root: Path) -> list[Path]:
    """Directories holding a package.json (outside node_modules): each one a frontend to validate."""
    return sorted({p.parent for p in iter_files(root) if p.name == "package.json"})


def scan_path(
    path: Path | str,
    *,
    kinds: set[str] | list[str] | tuple[str, ...] | None = None,
    schema: dict | Path | str | None = None,
    advisories: list[dict] | Path | str | None = None,
    called_tools: set[str] | None = None,
    run_ruff: bool = True,
    fetcher: dependencies.Fetcher | None = None,
    cache: dependencies.RegistryCache | None = None,
    registry_urls: dict[str, str] | None = None,
) -> list[Finding]:
    """Every finding of the checkout at ``path``, without network and without the database.

    ``kinds``: a subset of ``KINDS`` (default all). ``schema``: the backend's OpenAPI document (default
    an exported ``openapi.json`` in the checkout; without one contract validation is reported not run).
    ``advisories``: an OSV snapshot (default a snapshot file in the checkout). ``called_tools``: tool
    names executed in the review period, when the caller knows them. ``fetcher`` (and its ``cache``):
    how registry answers are fetched for the outdated-packages part; without one that part is not run;
    ``registry_urls``: the registries' base URLs (``pypi``, ``npm``) when not the public ones.
    """
    root = Path(path).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"not a directory: {path}")
    wanted = set(kinds or KINDS)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds: {', '.join(sorted(unknown))}")
    findings: list[Finding] = []
    if "stale" in wanted:
        findings += stale.find_stale(root, called_tools=called_tools)
    if "lint" in wanted and run_ruff:
        ruff = lint.run_ruff(root)
        findings += (
            ruff
            if ruff is not None
            else [
                Finding(
                    kind="lint",
                    category="ruff",
                    path="",
                    line=None,
                    name="not_run",
                    confidence=100,
                    reason="ruff could not run on this checkout",
                )
            ]
        )
        findings += lint.run_ruff_format(root)
        findings = _without_twins(findings)
    if "contract" in wanted:
        findings += _contracts(root, schema)
    if "dependency" in wanted:
        result = dependencies.audit_dependencies(
            root, advisories=advisories, fetcher=fetcher, cache=cache, urls=registry_urls
        )
        findings += result.findings + dependencies.not_run_findings(result)
    return findings


def _without_twins(findings: list[Finding]) -> list[Finding]:
    """An unused import ruff reports (with the edits that fix it) is not reported again by the stale
    analysis: one problem, one finding, counted once."""
    ruff = {(f.path, f.line) for f in findings if f.kind == "lint" and f.name == "F401"}
    return [
        f for f in findings if not (f.kind == "stale" and f.category == "import" and (f.path, f.line) in ruff)
    ]


def _contracts(root: Path, schema) -> list[Finding]:
    frontends = _frontend_roots(root)
    if not frontends:
        return []
    if schema is None:
        schema = contracts.find_schema_file(root)
    if schema is None:
        return [
            Finding(
                kind="contract",
                category="not_run",
                path="",
                line=None,
                name="openapi",
                confidence=100,
                reason="a frontend is present but no OpenAPI schema was given or exported in the checkout",
            )
        ]
    document = contracts.load_schema(schema)
    findings = []
    for frontend in frontends:
        prefix = "" if frontend == root else frontend.relative_to(root).as_posix() + "/"
        findings += contracts.validate_contracts(document, frontend, backend_root=root, prefix=prefix)
    return findings
