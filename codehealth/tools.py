"""Chat tools of code health: repositories with their scores, one repository's open findings and its
latest weekly report (read-only); a scan queued and a task for a finding (each causes work, so each
waits for the operator's approval).

Plain typed functions with docstrings, marked by ``juggernaut.tools.tool``; the chat app builds their JSON
schemas. Each acts as the chat session's owner and sees only that operator's repositories.
"""

from codehealth import services
from codehealth.errors import CodehealthError
from codehealth.findings import KINDS
from codehealth.live import latest_scans
from codehealth.models import CodeFinding, Repository
from juggernaut.tools import tool, tool_actor, tool_user

MAX_ITEMS = 50


def _repositories():
    return Repository.objects.for_user(tool_user())


@tool(safe=True)
def codehealth_repositories() -> list[dict]:
    """The repositories analysed for code health: name, source, latest score, open findings, last scan state."""
    repositories = list(_repositories())
    latest = latest_scans(repositories)
    return [
        {
            "repository_id": r.pk,
            "name": r.name,
            "github": f"{r.github_owner}/{r.github_name}" if r.on_github else "",
            "score": latest[r.pk].score if r.pk in latest else None,
            "open_findings": latest[r.pk].findings_count if r.pk in latest else None,
            "last_scan": latest[r.pk].status if r.pk in latest else "never",
            "last_scan_error": latest[r.pk].error if r.pk in latest else "",
        }
        for r in repositories
    ]


@tool(safe=True)
def codehealth_findings(repository: str, kind: str = "") -> list[dict]:
    """The open findings of one repository (by name), most confident first, optionally of one kind
    ("stale", "lint", "contract", "dependency"): where, what, why, whether a mechanical fix exists."""
    found = _named(repository)
    if found is None:
        return [{"error": f"no repository named {repository[:120]!r}"}]
    rows = CodeFinding.objects.open().filter(repository=found).order_by("-confidence", "path")
    if kind:
        if kind not in KINDS:
            return [{"error": f"kind must be one of {', '.join(KINDS)}"}]
        rows = rows.filter(kind=kind)
    return [
        {
            "finding_id": f.pk,
            "kind": f.kind,
            "category": f.category,
            "path": f.path,
            "line": f.line,
            "name": f.name,
            "confidence": f.confidence,
            "reason": f.reason[:300],
            "fixable": f.fixable,
            "task_id": f.task_id,
        }
        for f in rows[:MAX_ITEMS]
    ]


@tool(safe=False)
def codehealth_create_task(finding_id: int) -> dict:
    """Queue the engine task for one finding (or return the open one it has already)."""
    finding = CodeFinding.objects.for_user(tool_user()).filter(pk=finding_id).first()
    if finding is None:
        return {"error": f"no finding {finding_id}"}
    try:
        task = services.finding_task_create(finding, actor=tool_actor())
    except CodehealthError as exc:
        return {"error": exc.message}
    return {"task_id": task.pk, "created": bool(getattr(task, "was_created", False)), "title": task.title}


def _named(repository: str) -> Repository | None:
    return _repositories().filter(name=repository).first()


@tool(safe=True)
def codehealth_report(repository: str) -> dict:
    """The latest weekly code-health report of one repository (by name): score and trend, new and fixed
    findings, stale items, contract mismatches, vulnerable and outdated dependencies, auto-PRs."""
    found = _named(repository)
    if found is None:
        return {"error": f"no repository named {repository[:120]!r}"}
    report = found.reports.first()
    if report is None:
        return {"error": f"{found.name} has no weekly report yet (one is built each Monday, after a scan)"}
    return {
        "week": report.week_start.isoformat(),
        "score": report.score,
        "trend": report.trend,
        "new": report.new_count,
        "fixed": report.fixed_count,
        "stale_items": report.stale_count,
        "contract_mismatches": report.contract_count,
        "vulnerable": report.vulnerable_count if report.dependencies_audited else "not run",
        "outdated": report.outdated_count if report.dependencies_audited else "not run",
        "auto_prs_opened": report.prs_opened,
        "auto_prs_merged": report.prs_merged,
    }


# A scan clones the repository and calls GitHub and package registries from the jobs process: work an
# operator approves, never something a log line or a repository's text can start.
@tool(safe=False)
def codehealth_scan(repository: str) -> dict:
    """Queue a scan of one repository (by name) on the jobs process; its result arrives on the Code Health
    page and in codehealth_repositories when it finishes. Waits for the operator's approval."""
    found = _named(repository)
    if found is None:
        return {"error": f"no repository named {repository[:120]!r}"}
    services.scan_request(found)
    return {"queued": True, "repository": found.name}
