"""The Code Health pages: every repository with its score, and one repository's drill-down."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from codehealth import live, services
from codehealth.errors import CodehealthError
from codehealth.findings import KINDS
from codehealth.models import CodeFinding, Repository
from juggernaut.auth import actor_of, operator_required

FINDINGS_SHOWN = 200


def _repository(request: HttpRequest, pk: int) -> Repository:
    """The one scoped lookup: the operator's repository (an admin's: any), or 404."""
    repository = Repository.objects.for_user(request.user).filter(pk=pk).first()
    if repository is None:
        raise Http404(f"no repository {pk}")
    return repository


@operator_required
def index(request: HttpRequest) -> HttpResponse:
    repositories = list(Repository.objects.for_user(request.user))
    latest = live.latest_scans(repositories)
    rows = [{"repository": r, "scan": latest.get(r.pk), "report": r.reports.first()} for r in repositories]
    ctx = {
        "rows": rows,
        "status": live.codehealth_area_status(repositories),
        "now": timezone.now(),
        "active": "codehealth",
    }
    return render(request, "codehealth/index.html", ctx)


@operator_required
def repository_detail(request: HttpRequest, pk: int) -> HttpResponse:
    repository = _repository(request, pk)
    kind = request.GET.get("kind") or ""
    findings = (
        CodeFinding.objects.open().filter(repository=repository).order_by("kind", "-confidence", "path")
    )
    if kind in KINDS:
        findings = findings.filter(kind=kind)
    ctx = {
        "repository": repository,
        "scan": repository.scans.first(),
        "report": repository.reports.first(),
        "chart": live.score_chart(repository),
        "findings": findings[:FINDINGS_SHOWN],
        "kinds": KINDS,
        "kind": kind if kind in KINDS else "",
        "pulls": repository.pull_requests.all()[:10],
        "now": timezone.now(),
        "active": "codehealth",
    }
    return render(request, "codehealth/repository.html", ctx)


@operator_required
@require_POST
def repository_scan(request: HttpRequest, pk: int) -> HttpResponse:
    repository = _repository(request, pk)
    services.scan_request(repository)
    messages.success(request, f"A scan of {repository.name} is queued; the jobs process runs it.")
    return redirect("codehealth:repository", pk=repository.pk)


@operator_required
@require_POST
def finding_task(request: HttpRequest, pk: int) -> HttpResponse:
    finding = (
        CodeFinding.objects.select_related("repository")
        .filter(pk=pk, repository__in=Repository.objects.for_user(request.user))
        .first()
    )
    if finding is None:
        raise Http404(f"no finding {pk}")
    try:
        task = services.finding_task_create(finding, actor=actor_of(request.user))
        messages.success(request, f"Task #{task.pk} is open for {finding.name}.")
    except CodehealthError as exc:
        messages.error(request, f"Refused: {exc.message}")
    return redirect("codehealth:repository", pk=finding.repository_id)
