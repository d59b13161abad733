"""The chat page: the operator's sessions and one session's live view, with its forms.

Forms post plain HTTP and redirect back to the session (the websocket redraws every other open page);
a refusal (an empty message, a busy session, someone else's session) is a 4xx page in the HQ's error
shape. Sessions are their owner's, as in the JSON API: anyone else's is a 404.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from chat import live, services
from chat.errors import ChatError
from juggernaut import hq
from juggernaut.auth import actor_of, operator_required
from juggernaut.middleware import refusal_response
from routing.live import key_state
from routing.models import Policy


def _refused(request: HttpRequest, exc: ChatError) -> HttpResponse:
    if request.htmx:  # htmx swaps nothing on a 4xx: the flash line says why (the form page gets the 4xx)
        return HttpResponse(hq.render_flash(error=f"Refused: {exc.message}"))
    return refusal_response(request, exc)


def _done(request: HttpRequest, session_id: int, ok: str) -> HttpResponse:
    """Back to the session; from htmx, a flash line plus the fresh fragments (the socket redraws the rest)."""
    if not request.htmx:
        return redirect("chat:session", session_id=session_id)
    session = services.ChatSession.objects.get(pk=session_id)
    flash = hq.render_flash(ok=ok)
    return HttpResponse(flash + live.render_fragments(session))


@operator_required
def index(request: HttpRequest) -> HttpResponse:
    ctx = {
        "active": "chat",
        "now": timezone.now(),
        "sessions": services.ChatSession.objects.owned_by(request.user)[:100],
        "policies": Policy.objects.all(),
        "key": key_state(),
    }
    return render(request, "chat/index.html", ctx)


@operator_required
def session_page(request: HttpRequest, session_id: int) -> HttpResponse:
    try:
        session = services.session_get(request.user, session_id)
    except ChatError as exc:
        return _refused(request, exc)
    ctx = {**live.context(session), "active": "chat", "live_page": live.page_name(session.pk), "oob": False}
    return render(request, "chat/session.html", ctx)


@operator_required
@require_POST
def session_create(request: HttpRequest) -> HttpResponse:
    try:
        session = services.session_create(
            request.user, mode=request.POST.get("mode", "").strip()[:40], title=request.POST.get("title", "")
        )
    except ChatError as exc:
        return _refused(request, exc)
    return redirect("chat:session", session_id=session.pk)


@operator_required
@require_POST
def message_send(request: HttpRequest, session_id: int) -> HttpResponse:
    try:
        session = services.session_get(request.user, session_id)
        run = services.message_send(session, content=request.POST.get("content", ""), user=request.user)
    except ChatError as exc:
        return _refused(request, exc)
    return _done(request, session.pk, f"Sent: run {run.pk} started.")


@operator_required
@require_POST
def session_mode(request: HttpRequest, session_id: int) -> HttpResponse:
    try:
        session = services.session_get(request.user, session_id)
        services.session_mode_set(session, request.POST.get("mode", "").strip()[:40])
    except ChatError as exc:
        return _refused(request, exc)
    return _done(request, session.pk, f"Mode: {session.mode}, from the next run.")


@operator_required
@require_POST
def run_stop(request: HttpRequest, run_id: int) -> HttpResponse:
    try:
        run = services.run_get(request.user, run_id)
        run = services.run_stop(run, user=request.user, actor=actor_of(request.user))
    except ChatError as exc:
        return _refused(request, exc)
    return _done(request, run.session_id, f"Stop asked: run {run.pk} stops within a second.")


@operator_required
@require_POST
def run_approve(request: HttpRequest, run_id: int) -> HttpResponse:
    approve = request.POST.get("approve", "")
    try:
        run = services.run_get(request.user, run_id)  # an unknown run is a 404 whatever the form says
        if approve not in ("0", "1"):
            raise ChatError("bad_input", "approve must be 1 (approve) or 0 (deny)", status=422)
        services.run_approve(
            run,
            tool_call_id=request.POST.get("tool_call_id", "")[:100],
            approve=approve == "1",
            user=request.user,
            actor=actor_of(request.user),
        )
    except ChatError as exc:
        return _refused(request, exc)
    return _done(request, run.session_id, "Approved." if approve == "1" else "Denied.")


@operator_required
@require_POST
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    try:
        run = services.run_get(request.user, run_id)
        new = services.run_resume(run, user=request.user)
    except ChatError as exc:
        return _refused(request, exc)
    return _done(request, run.session_id, f"Resumed in run {new.pk}.")
