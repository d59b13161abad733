"""The Engine page and its operator actions: plain function views, staff only.

Actions answer htmx with fresh fragments (out-of-band, plus a flash line); without htmx they
redirect back to the page with a message. The websocket sends the same fragments to every other
open page.
"""

import json

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from juggernaut.auth import actor_of, operator_required
from juggernaut.engine import live, services
from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import Task

ACTIONS = {
    "approve": services.task_approve,
    "retry": services.task_retry,
    "cancel": services.task_cancel,
    "reassign": services.task_reassign,
}
PAST = {"approve": "approved", "retry": "queued again", "cancel": "cancelled", "reassign": "reassigned"}


def _actor(request: HttpRequest) -> str:
    return actor_of(request.user)


def _answer(request: HttpRequest, *, ok: str | None = None, error: EngineError | None = None) -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error.message)
        elif ok:
            messages.success(request, ok)
        return redirect("engine:index")
    # htmx swaps nothing on 4xx by default, so a refusal is a 200 whose flash says why; the JSON
    # API gives the real 409.
    flash = render_to_string("engine/_flash.html", {"ok": ok, "error": error, "oob": True})
    return HttpResponse(flash + live.render_fragments())


@operator_required
def index(request: HttpRequest) -> HttpResponse:
    ctx = {**live.context(), "active": "engine", "kinds": live.kinds(), "oob": False}
    return render(request, "engine/index.html", ctx)


@operator_required
def task_detail(request: HttpRequest, task_id: int) -> HttpResponse:
    task = Task.objects.select_related("lease_owner", "depends_on").filter(pk=task_id).first()
    if task is None:
        raise Http404("no such task")
    ctx = {
        "task": task,
        "events": task.events.all(),
        "payload": json.dumps(task.payload, indent=2),
        "result": json.dumps(task.result, indent=2) if task.result is not None else "",
        "active": "engine",
    }
    return render(request, "engine/task.html", ctx)


@operator_required
@require_POST
def task_create(request: HttpRequest) -> HttpResponse:
    data = request.POST
    try:
        payload = json.loads(data.get("payload") or "{}")
    except json.JSONDecodeError as exc:
        return _answer(request, error=EngineError("bad_payload", f"payload is not JSON: {exc}", status=422))
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
        return _refused(request, exc)
    verb = "created" if task.was_created else "already open (same dedupe key)"
    return _answer(request, ok=f"Task #{task.pk} “{task.title}” {verb}.")


@operator_required
@require_POST
def task_action(request: HttpRequest, task_id: int, action: str) -> HttpResponse:
    func = ACTIONS.get(action)
    if func is None:
        raise Http404("no such action")
    kwargs = {}
    # hx-prompt sends the operator's answer in a header; a plain form posts a field.
    worker_name = (request.POST.get("worker_name") or request.headers.get("HX-Prompt") or "").strip()
    if action == "reassign" and worker_name:
        kwargs["worker_name"] = worker_name
    try:
        task = func(task_id, actor=_actor(request), **kwargs)
    except EngineError as exc:
        return _refused(request, exc)
    return _answer(request, ok=f"Task #{task.pk} “{task.title}” {PAST[action]}.")


@operator_required
@require_POST
def task_priority(request: HttpRequest, task_id: int) -> HttpResponse:
    raw = request.POST.get("priority") or request.headers.get("HX-Prompt") or ""
    try:
        task = services.task_prioritize(task_id, priority=_priority(raw), actor=_actor(request))
    except EngineError as exc:
        return _refused(request, exc)
    return _answer(request, ok=f"Task #{task.pk} priority set to {task.priority}.")


def _priority(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError as exc:
        raise EngineError("bad_priority", "priority must be a whole number", status=422) from exc


def _refused(request: HttpRequest, exc: EngineError) -> HttpResponse:
    """Unknown tasks are a 404; any other refusal is shown as a flash (htmx swaps nothing on a 4xx)."""
    if exc.status == 404:
        raise Http404(exc.message) from exc
    return _answer(request, error=exc)


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
