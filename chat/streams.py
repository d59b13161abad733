"""A chat run streamed in the protocols frontends speak: AG-UI and the AI SDK's UI message stream.

A request starts a run with its last message, or answers the approvals the session's run waits for;
then the run's events, replayed from the log and followed live (exactly once, in order), go through
the protocol's translator (``chat.protocols``) as server-sent events until the run stops or pauses
for approvals. Leaving early does not stop the run: Stop does (``POST /api/chat/runs/{id}/stop``).
"""

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

from asgiref.sync import sync_to_async
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections
from django.http import StreamingHttpResponse

from chat import services
from chat.errors import ChatError
from chat.models import ChatRun, ChatSession
from chat.protocols import agui, aisdk, is_last
from chat.schemas import RunAgentIn, UIChatIn
from juggernaut.auth import Principal, require_scope
from juggernaut.events.api import StreamRevoked, follow, revoked_error


def _session(user, ident: str) -> ChatSession:
    """The caller's session named by a protocol's thread or chat id (a string), or 404."""
    if not ident.isdigit() or len(ident) > 18:
        raise ChatError("not_found", f"no chat session {ident[:100]!r}", status=404)
    return services.session_get(user, int(ident))


def _send(session: ChatSession, text: str, principal: Principal) -> tuple[ChatRun, int]:
    if not text.strip():
        raise ChatError(
            "no_message",
            "the last message must be a user message with text (or answer the run's approvals)",
            status=422,
        )
    return services.message_send(session, content=text, user=principal.user), 0


def _agui_text(message: dict) -> str:
    content = message.get("content") if message.get("role") == "user" else None
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return content if isinstance(content, str) else ""


def _agui_begin(principal: Principal, payload: RunAgentIn) -> tuple[ChatRun, int, dict]:
    session = _session(principal.user, payload.threadId)
    if payload.resume:
        try:
            decisions = agui.decisions_from_resume([e.dict() for e in payload.resume])
        except ValueError as exc:
            raise ChatError("bad_resume", str(exc), status=422) from exc
        run, after = services.session_decide(
            session, decisions=decisions, user=principal.user, actor=principal.actor
        )
    else:
        run, after = _send(session, _agui_text(payload.messages[-1] if payload.messages else {}), principal)
    state = agui.initial_state(
        run.pk, status={"phase": run.phase, "status": run.status}, budget=run.budget.as_dict()
    )
    close_old_connections()  # the stream may last long: the pool gets back the connection it started with
    return run, after, state


def _ui_begin(principal: Principal, payload: UIChatIn) -> tuple[ChatRun, int]:
    session = _session(principal.user, payload.id)
    last = payload.messages[-1]
    if last.get("role") == "assistant":
        decisions = aisdk.decisions_of(last)
        if not decisions:
            raise ChatError("no_message", "the last message answers no approval", status=422)
        run, after = services.session_decide(
            session, decisions=decisions, user=principal.user, actor=principal.actor
        )
    else:
        run, after = _send(session, aisdk.text_of(last) if last.get("role") == "user" else "", principal)
    close_old_connections()  # as above
    return run, after


def _data(event) -> str:
    return f"data: {json.dumps(event, cls=DjangoJSONEncoder)}\n\n"


async def _frames(
    run: ChatRun,
    after_seq: int,
    token_id: int | None,
    *,
    opening: list[dict],
    feed: Callable[[dict], list[dict]],
    revoked: Callable[[], list],
    closing: tuple[str, ...] = (),
) -> AsyncIterator[str]:
    for event in opening:
        yield _data(event)
    try:
        async with aclosing(follow(run.topic, after_seq, token_id)) as batches:
            async for batch in batches:
                if batch is None:
                    yield ": ping\n\n"
                    continue
                for envelope in batch:
                    for event in feed(envelope):
                        yield _data(event)
                    if is_last(envelope):
                        for frame in closing:
                            yield frame
                        return
    except StreamRevoked:
        for event in revoked():
            yield _data(event)
        for frame in closing:
            yield frame


def _response(frames: AsyncIterator[str], headers: dict | None = None) -> StreamingHttpResponse:
    response = StreamingHttpResponse(frames, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


async def agui_stream(request, payload: RunAgentIn) -> StreamingHttpResponse:
    """``POST /api/chat/agui``: the run as AG-UI events."""
    principal = await sync_to_async(require_scope)(request, "write")
    run, after, state = await sync_to_async(_agui_begin)(principal, payload)
    translator = agui.AguiTranslator(thread_id=payload.threadId, run_id=payload.runId, state=state)

    def revoked() -> list[dict]:
        if translator.ended:
            return []
        error = revoked_error()
        return [{"type": "RUN_ERROR", "message": error.message, "code": error.code}]

    token_id = principal.token.pk if principal.token else None
    opening = translator.open(int(time.time() * 1000))
    return _response(_frames(run, after, token_id, opening=opening, feed=translator.feed, revoked=revoked))


async def ui_stream(request, payload: UIChatIn) -> StreamingHttpResponse:
    """``POST /api/chat/ui-stream``: the run as the AI SDK's UI message stream."""
    principal = await sync_to_async(require_scope)(request, "write")
    run, after = await sync_to_async(_ui_begin)(principal, payload)
    translator = aisdk.UIStreamTranslator(run_id=run.pk)

    def revoked() -> list:
        if translator.ended:
            return []
        error = revoked_error()
        return [{"type": "error", "errorText": error.message}, {"type": "finish", "finishReason": "error"}]

    token_id = principal.token.pk if principal.token else None
    frames = _frames(
        run,
        after,
        token_id,
        opening=translator.open(),
        feed=translator.feed,
        revoked=revoked,
        closing=(f"data: {aisdk.DONE}\n\n",),
    )
    return _response(frames, aisdk.HEADERS)
