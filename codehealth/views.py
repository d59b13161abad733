"""The Code Health pages: every repository with its score, and one repository's drill-down.

Both are live (see ``codehealth.live``); an action from either answers htmx with the flash line and the
page's fresh fragments, a plain form post with a redirect.
"""

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from codehealth import live, services
from codehealth.errors import CodehealthError
from codehealth.models import CodeFinding, Repository
from juggernaut import hq
from juggernaut.auth import actor_of, operator_required


def _repository(request: HttpRequest, pk: int) -> Repository:
    """The one scoped lookup: the operator's repository (an admin's: any), or 404."""
    repository = Repository.objects.for_user(request.user).filter(pk=pk).first()
    if repository is None:
        raise Http404(f"no repository {pk}")
    return repository


def _answer(request: HttpRequest, repository: Repository, *, ok: str = "", error: str = "") -> HttpResponse:
    if not request.htmx:
        (messages.error if error else messages.success)(request, error or ok)
        return redirect("codehealth:repository", pk=repository.pk)
    page = request.POST.get("page", "")
    fragments = (
        live.render_index(viewer=request.user)
        if page == live.INDEX_PAGE
        else live.render_detail(page, viewer=request.user)
    )
    return HttpResponse(hq.render_flash(ok=ok, error=error) + fragments)


@operator_required
def index(request: HttpRequest) -> HttpResponse:
    ctx = live.index_context(request.user) | {"active": "codehealth", "live_page": live.INDEX_PAGE}
    return render(request, "codehealth/index.html", ctx)


class RepositoryAddForm(forms.Form):
    """The Code Health page's "Add repository": the services apply every rule (a GitHub name's shape,
    local paths only for an admin under CODEHEALTH_LOCAL_ROOTS, names unique per owner)."""

    github = forms.CharField(required=False, max_length=140, strip=True)
    local_path = forms.CharField(required=False, max_length=1000, strip=True)


@operator_required
@require_POST
def repository_add(request: HttpRequest) -> HttpResponse:
    """Register a repository owned by the signed-in operator, then open its page to scan it."""
    form = RepositoryAddForm(request.POST)
    form.is_valid()
    data = form.cleaned_data
    try:
        repository = services.repository_create(
            request.user, github=data.get("github", ""), local_path=data.get("local_path", "")
        )
    except CodehealthError as exc:
        if request.htmx:
            return HttpResponse(hq.render_flash(error=f"Refused: {exc.message}"))
        messages.error(request, f"Refused: {exc.message}")
        return redirect("codehealth:index")
    messages.success(request, f"{repository.name} is registered: press Scan now to analyse it.")
    response = redirect("codehealth:repository", pk=repository.pk)
    if request.htmx:
        response = HttpResponse(status=204, headers={"HX-Redirect": response["Location"]})
    return response


@operator_required
def repository_detail(request: HttpRequest, pk: int) -> HttpResponse:
    repository = _repository(request, pk)
    kind = request.GET.get("kind") or ""
    page = request.GET.get("page") or "1"
    ctx = live.detail_context(repository, kind, int(page) if page.isdigit() and len(page) < 8 else 1) | {
        "active": "codehealth"
    }
    return render(request, "codehealth/repository.html", ctx)


@operator_required
@require_POST
def repository_scan(request: HttpRequest, pk: int) -> HttpResponse:
    repository = _repository(request, pk)
    services.scan_request(repository)
    return _answer(
        request, repository, ok=f"A scan of {repository.name} is queued; the jobs process runs it."
    )


def _finding(request: HttpRequest, pk: int) -> CodeFinding:
    """A finding of one of the operator's repositories, or 404."""
    finding = CodeFinding.objects.for_user(request.user).filter(pk=pk).first()
    if finding is None:
        raise Http404(f"no finding {pk}")
    return finding


@operator_required
@require_POST
def finding_task(request: HttpRequest, pk: int) -> HttpResponse:
    finding = _finding(request, pk)
    try:
        task = services.finding_task_create(finding, actor=actor_of(request.user))
    except CodehealthError as exc:
        return _answer(request, finding.repository, error=f"Refused: {exc.message}")
    return _answer(request, finding.repository, ok=f"Task #{task.pk} is open for {finding.name}.")


def _review(request: HttpRequest, pk: int, *, dismiss: bool) -> HttpResponse:
    finding = _finding(request, pk)
    try:
        services.finding_review(
            finding,
            actor=actor_of(request.user),
            dismiss=dismiss,
            reason=request.POST.get("reason", "")[:300],
        )
    except CodehealthError as exc:
        return _answer(request, finding.repository, error=f"Refused: {exc.message}")
    done = "dismissed: it no longer counts" if dismiss else "reopened: it counts again"
    return _answer(request, finding.repository, ok=f"{finding.name} {done}.")


@operator_required
@require_POST
def finding_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    return _review(request, pk, dismiss=True)


@operator_required
@require_POST
def finding_reopen(request: HttpRequest, pk: int) -> HttpResponse:
    return _review(request, pk, dismiss=False)
