"""The code health JSON API, mounted at ``/api/codehealth``: repositories, scans, findings, reports,
tasks per finding and auto-PRs.

Scopes: ``write`` to register repositories, ask for scans, create tasks, dismiss or reopen findings
and open auto-PRs; ``read``
for listings. Each caller sees only the repositories it registered (an admin sees all); anyone
else's is a 404, as if it did not exist. A signed-in session has every scope.
"""

from django.http import HttpRequest
from ninja import Query, Router, Status

from codehealth import autopr, schemas, services
from codehealth.errors import CodehealthError
from codehealth.models import CodeFinding, Repository
from juggernaut.auth import require_scope
from juggernaut.openapi import refusals
from juggernaut.schemas import DbId

router = Router(tags=["codehealth"])


def _repository(request: HttpRequest, scope: str, repository_id: int) -> Repository:
    """The one scoped lookup: the caller's repository, or 404."""
    principal = require_scope(request, scope)
    repository = Repository.objects.for_user(principal.user).filter(pk=repository_id).first()
    if repository is None:
        raise CodehealthError("not_found", f"no repository {repository_id}", status=404)
    return repository


@router.get("/repositories", response=list[schemas.RepositoryOut])
def repositories_list(request):
    """The caller's repositories."""
    principal = require_scope(request, "read")
    return Repository.objects.for_user(principal.user)


@router.post("/repositories", response={201: schemas.RepositoryOut})
def repositories_create(request, payload: schemas.RepositoryIn):
    """Register a repository: `github` (owner/name) or `local_path` (an absolute directory)."""
    principal = require_scope(request, "write")
    repository = services.repository_create(principal.user, **payload.dict())
    return Status(201, repository)


@router.get("/repositories/{repository_id}", response=schemas.RepositoryOut)
def repositories_detail(request, repository_id: DbId):
    return _repository(request, "read", repository_id)


@router.post("/repositories/{repository_id}/scans", response={202: schemas.ScanQueuedOut})
def scans_request(request, repository_id: DbId):
    """Queue a scan (the jobs process clones and analyses); its progress arrives on the `codehealth` topic."""
    repository = _repository(request, "write", repository_id)
    services.scan_request(repository)
    return Status(202, {"repository_id": repository.pk, "queued": True})


@router.get("/repositories/{repository_id}/scans", response=list[schemas.ScanOut])
def scans_list(request, repository_id: DbId):
    """The latest 50 scans, newest first."""
    return _repository(request, "read", repository_id).scans.all()[:50]


@router.get("/repositories/{repository_id}/findings", response=list[schemas.CodeFindingOut])
def findings_list(request, repository_id: DbId, query: Query[schemas.FindingsQuery]):
    """Findings of the repository: open (default), dismissed, fixed or all, optionally of one kind."""
    rows = CodeFinding.objects.filter(repository=_repository(request, "read", repository_id))
    if query.kind:
        rows = rows.filter(kind=query.kind)
    if query.state == "open":
        rows = rows.open()
    elif query.state == "dismissed":
        rows = rows.dismissed()
    elif query.state == "fixed":
        rows = rows.filter(fixed_scan__isnull=False)
    return rows[: query.limit]


@router.get("/repositories/{repository_id}/reports", response=list[schemas.ReportOut])
def reports_list(request, repository_id: DbId):
    """Weekly reports, newest first (up to a year)."""
    return _repository(request, "read", repository_id).reports.all()[:52]


@router.get("/repositories/{repository_id}/pull-requests", response=list[schemas.PullRequestOut])
def pull_requests_list(request, repository_id: DbId):
    return _repository(request, "read", repository_id).pull_requests.all()[:100]


@router.post(
    "/repositories/{repository_id}/pull-requests",
    response={201: schemas.PullRequestOut},
    openapi_extra=refusals(
        {
            429: "`github_refused`: GitHub's rate limit was reached; try again later",
            502: "`github_refused`: GitHub refused or failed",
        }
    ),
)
def pull_requests_open(request, repository_id: DbId):
    """Open one auto-PR with the open mechanical fixes (at most `CODEHEALTH_MAX_OPEN_PRS` open at once)."""
    repository = _repository(request, "write", repository_id)
    return Status(201, autopr.pull_request_open(repository))


def _finding(request: HttpRequest, finding_id: int) -> tuple[CodeFinding, str]:
    """A finding of one of the caller's repositories (or 404), and who acts on it (``write`` scope)."""
    principal = require_scope(request, "write")
    finding = CodeFinding.objects.for_user(principal.user).filter(pk=finding_id).first()
    if finding is None:
        raise CodehealthError("not_found", f"no finding {finding_id}", status=404)
    return finding, principal.actor


@router.post(
    "/findings/{finding_id}/task", response={200: schemas.FindingTaskOut, 201: schemas.FindingTaskOut}
)
def findings_task(request, finding_id: DbId):
    """Queue the engine task for a finding (201), or return the open one it already has (200)."""
    finding, actor = _finding(request, finding_id)
    task = services.finding_task_create(finding, actor=actor)
    created = bool(getattr(task, "was_created", False))
    return Status(201 if created else 200, {"task_id": task.pk, "created": created})


@router.post("/findings/{finding_id}/dismiss", response=schemas.CodeFindingOut)
def findings_dismiss(request, finding_id: DbId, payload: schemas.DismissIn):
    """Dismiss a finding as a false alarm or intended: it stays dismissed through later scans and no
    longer counts in the score (409 when fixed, dismissed already, or an audit that did not run)."""
    finding, actor = _finding(request, finding_id)
    return services.finding_review(finding, actor=actor, dismiss=True, reason=payload.reason)


@router.post("/findings/{finding_id}/reopen", response=schemas.CodeFindingOut)
def findings_reopen(request, finding_id: DbId):
    """Take a dismissal back: the finding counts again (409 when it is not dismissed)."""
    finding, actor = _finding(request, finding_id)
    return services.finding_review(finding, actor=actor, dismiss=False)
