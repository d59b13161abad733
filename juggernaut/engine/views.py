"""The Engine's pages and operator actions: plain function views, staff only.

Actions answer htmx with a flash line plus the fragments of the page they came from (out-of-band):
the Engine page's fragments, the Overview's status lines, or a refresh of a static page. Without
htmx they redirect back with a message. Every refusal is a sentence in the flash, never an error page.
"""

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from juggernaut import hq
from juggernaut.auth import actor_of, operator_required
from juggernaut.engine import live, services
from juggernaut.engine.errors import EngineError
from juggernaut.engine.forms import TaskFilterForm
from juggernaut.engine.models import Task, Worker, worker_actor
from juggernaut.errors import HQError
from juggernaut.inputs import json_strict_loads

ACTIONS = {
    "approve": services.task_approve,
    "retry": services.task_retry,
    "cancel": services.task_cancel,
    "reassign": services.task_reassign,
    "acknowledge": services.task_acknowledge,
}
PAST = {
    "approve": "approved",
    "retry": "queued again",
    "cancel": "cancelled",
    "reassign": "back in the queue",
    "acknowledge": "acknowledged: it no longer asks for attention",
}
TASKS_PER_PAGE = 50
# Pages under the Engine's nav entry that have no live fragments of their own.
STATIC = {"active": "engine", "live_page": "static"}


def _actor(request: HttpRequest) -> str:
    return actor_of(request.user)


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.headers.get("Referer") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("engine:index")


def _answer(request: HttpRequest, *, ok: str | None = None, error: EngineError | None = None) -> HttpResponse:
    text = f"Refused: {live.sentence(error.message)}" if error else ok
    page = request.POST.get("page", "")
    if not request.htmx or page not in (hq.OVERVIEW, "engine"):
        (messages.error if error else messages.success)(request, text)
        if not request.htmx:
            return redirect(_back(request))
        # A page without live fragments: reload it, and the message shows in its flash.
        response = HttpResponse("")
        response["HX-Refresh"] = "true"
        return response
    # htmx swaps nothing on 4xx by default, so a refusal is a 200 whose flash says why; the JSON
    # API gives the real 409.
    flash = hq.render_flash(ok=None if error else text, error=text if error else None)
    fragments = live.render_fragments() if page == "engine" else hq.render_lines(request.user)
    return HttpResponse(flash + fragments)


@operator_required
def index(request: HttpRequest) -> HttpResponse:
    ctx = {**live.context(), "active": "engine", "kinds": live.kinds(), "oob": False}
    return render(request, "engine/index.html", ctx)


@operator_required
def task_list(request: HttpRequest) -> HttpResponse:
    """Find any task: search by title, id or dedupe key; filter by status, kind, worker, source, attention."""
    form = TaskFilterForm(request.GET or None)
    tasks = Task.objects.select_related("lease_owner").order_by("-created_at", "-id")
    if form.is_valid():
        tasks = form.apply(tasks)
    page = Paginator(tasks, TASKS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    ctx = {
        "form": form,
        "page": page,
        "rows": [{"task": t} for t in page],
        "query": query.urlencode(),
        **STATIC,
    }
    return render(request, "engine/tasks.html", ctx)


@operator_required
def task_detail(request: HttpRequest, task_id: int) -> HttpResponse:
    task = Task.objects.select_related("lease_owner", "depends_on").filter(pk=task_id).first()
    if task is None:
        raise Http404("no such task")
    candidates = live.reassign_candidates(task)
    ctx = {
        "task": task,
        "actions": task.allowed_actions(),
        "candidates": candidates,
        "start_actions": [] if candidates else live.start_actions(task),
        "events": task.events.all(),
        "origin_link": hq.origin_link(task.origin),
        "payload": json.dumps(task.payload, indent=2),
        "result": json.dumps(task.result, indent=2) if task.result is not None else "",
        **STATIC,
    }
    return render(request, "engine/task.html", ctx)


@operator_required
def worker_detail(request: HttpRequest, worker_id: int) -> HttpResponse:
    worker = Worker.objects.filter(pk=worker_id).first()
    if worker is None:
        raise Http404("no such worker")
    tasks = (
        Task.objects.filter(Q(lease_owner=worker) | Q(events__actor=worker_actor(worker.name)))
        .select_related("lease_owner")
        .distinct()
        .order_by("-created_at", "-id")
    )
    ctx = {
        **live.worker_context(worker),
        "rows": [{"task": t} for t in tasks[:TASKS_PER_PAGE]],
        "more": tasks.count() > TASKS_PER_PAGE,
        **STATIC,
    }
    return render(request, "engine/worker.html", ctx)


@operator_required
@require_POST
def task_create(request: HttpRequest) -> HttpResponse:
    data = request.POST
    try:
        payload = json_strict_loads(data.get("payload") or "{}")
    except json.JSONDecodeError as exc:
        return _answer(request, error=EngineError("bad_payload", f"payload is not JSON: {exc}", status=422))
    except HQError as exc:
        return _answer(request, error=EngineError(exc.code, f"payload: {exc.message}", status=422))
    caps = data.get("required_capabilities", "").strip()
    try:
        task = services.task_create(
            data.get("title", ""),
            kind=data.get("kind", "").strip(),
            payload=payload,
            priority=_priority(data.get("priority") or "0"),
            required_capabilities=[c.strip() for c in caps.split(",")] if caps else None,
            needs_approval=True if data.get("needs_approval") else None,
            actor=_actor(request),
        )
    except EngineError as exc:
        return _answer(request, error=exc)
    verb = "created" if task.was_created else "already open (same dedupe key)"
    return _answer(request, ok=f"Task #{task.pk} “{task.title}” {verb}.")


@operator_required
@require_POST
def task_action(request: HttpRequest, task_id: int, action: str) -> HttpResponse:
    func = ACTIONS.get(action)
    if func is None:
        raise Http404("no such action")
    kwargs = {}
    worker_name = request.POST.get("worker_name", "").strip()
    try:
        if action == "reassign" and worker_name:
            kwargs["worker_name"] = worker_name
        task = func(task_id, actor=_actor(request), **kwargs)
    except EngineError as exc:
        return _answer(request, error=exc)
    done = f"Task #{task.pk} “{task.title}” {PAST[action]}"
    if worker_name:
        done += f"; {worker_name} can run it"
    return _answer(request, ok=done + ".")


@operator_required
@require_POST
def task_priority(request: HttpRequest, task_id: int) -> HttpResponse:
    try:
        priority = _priority(request.POST.get("priority", ""))
        task = services.task_prioritize(task_id, priority=priority, actor=_actor(request))
    except EngineError as exc:
        return _answer(request, error=exc)
    return _answer(request, ok=f"Task #{task.pk} priority set to {task.priority}.")


def _priority(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError as exc:
        raise EngineError("bad_priority", "priority must be a whole number", status=422) from exc


@operator_required
@require_POST
def pause(request: HttpRequest) -> HttpResponse:
    services.engine_pause(actor=_actor(request), reason=request.POST.get("reason", ""))
    return _answer(request, ok="Engine paused: workers finish what they hold and claim nothing new.")


@operator_required
@require_POST
def resume(request: HttpRequest) -> HttpResponse:
    services.engine_resume(actor=_actor(request))
    return _answer(request, ok="Engine resumed: workers claim again.")
