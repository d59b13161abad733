"""The chat's JSON API, mounted at ``/api/chat``: sessions, messages (each starts a run), runs and their
controls. Scopes: ``read`` for reading, ``write`` for everything that changes something. A session is
its owner's: anyone else gets 404. A run's events are on ``chat.run.<id>`` (replay, SSE, websocket).
"""

from ninja import Router, Status

from chat import schemas, services, streams
from chat.models import ChatSession
from chat.protocols.docs import protocol_docs
from juggernaut.auth import require_scope
from juggernaut.openapi import TopicEvents, event_stream
from juggernaut.schemas import DbId

router = Router(tags=["chat"])
DOCS = protocol_docs()  # the AG-UI and AI SDK mappings, made by the translators the endpoints use
LIST_LIMIT = 100
# A run's events, typed in the document (the envelopes of /api/events/chat.run.<id>).
EVENTS = TopicEvents(name="ChatRun", pattern=r"^chat\.run\.[0-9]+$", data=schemas.RUN_EVENTS)


@router.get("/sessions", response=list[schemas.SessionOut])
def sessions_list(request):
    """The caller's sessions, the most recently active first."""
    principal = require_scope(request, "read")
    return ChatSession.objects.owned_by(principal.user)[:LIST_LIMIT]


@router.post("/sessions", response={201: schemas.SessionDetailOut})
def sessions_create(request, payload: schemas.SessionIn):
    """Start a session in a mode (a routing policy); `limits` override the mode's run limits."""
    principal = require_scope(request, "write")
    session = services.session_create(principal.user, mode=payload.mode, title=payload.title)
    if payload.limits is not None:
        services.session_limits_set(session, **payload.limits.dict())
    return Status(201, session)


@router.get("/sessions/{session_id}", response=schemas.SessionDetailOut)
def sessions_get(request, session_id: DbId):
    principal = require_scope(request, "read")
    return services.session_get(principal.user, session_id)


@router.put("/sessions/{session_id}/limits", response=schemas.SessionDetailOut)
def sessions_limits(request, session_id: DbId, payload: schemas.LimitsIn):
    """Override the session's run limits (null: the mode's default); applies from its next run."""
    principal = require_scope(request, "write")
    session = services.session_get(principal.user, session_id)
    services.session_limits_set(session, **payload.dict())
    return session


@router.put("/sessions/{session_id}/mode", response=schemas.SessionDetailOut)
def sessions_mode(request, session_id: DbId, payload: schemas.ModeIn):
    """Switch the session's mode (a routing policy); a running run keeps its model, the next run uses it."""
    principal = require_scope(request, "write")
    return services.session_mode_set(services.session_get(principal.user, session_id), payload.mode)


@router.post("/sessions/{session_id}/messages", response={202: schemas.RunStartedOut})
def messages_send(request, session_id: DbId, payload: schemas.MessageIn):
    """Send a message: a run starts for it in the background. While a run of the session is active
    the message is refused with 409 `run_active` (stop the run or wait for it)."""
    principal = require_scope(request, "write")
    session = services.session_get(principal.user, session_id)
    return Status(202, services.message_send(session, content=payload.content, user=principal.user))


@router.get("/runs/{run_id}", response=schemas.RunOut)
def runs_get(request, run_id: DbId):
    """A run's whole state: status, phase, stop, budget, counters, guardrails and every tool execution."""
    principal = require_scope(request, "read")
    return services.run_get(principal.user, run_id)


@router.post("/runs/{run_id}/stop", response=schemas.RunOut)
def runs_stop(request, run_id: DbId):
    """Stop a run: at once when it is queued or waits for approval, else within a second (its
    `stop_reason` event says when)."""
    principal = require_scope(request, "write")
    run = services.run_get(principal.user, run_id)
    return services.run_stop(run, user=principal.user, actor=principal.actor)


@router.post("/runs/{run_id}/approve", response=schemas.ToolExecutionOut)
def runs_approve(request, run_id: DbId, payload: schemas.ApproveIn):
    """Approve (`approve: true`) or deny a tool call the run waits for."""
    principal = require_scope(request, "write")
    run = services.run_get(principal.user, run_id)
    return services.run_approve(
        run,
        tool_call_id=payload.tool_call_id,
        approve=payload.approve,
        user=principal.user,
        actor=principal.actor,
    )


@router.post("/runs/{run_id}/resume", response={202: schemas.RunStartedOut})
def runs_resume(request, run_id: DbId):
    """Go on from where a stopped run (an interrupted one above all) ended, in a new run."""
    principal = require_scope(request, "write")
    run = services.run_get(principal.user, run_id)
    return Status(202, services.run_resume(run, user=principal.user))


# --- the frontend protocols: a message (or the answers to approvals) in, the run streamed out ------


@router.post("/agui", response={200: None}, openapi_extra=event_stream("AG-UI events, one per `data:` line"))
async def agui(request, payload: schemas.RunAgentIn):
    """AG-UI: post a `RunAgentInput` (`threadId` = the session's id, as a string); the run streams as
    AG-UI events (SSE) until it stops, or pauses for approvals with the interrupt outcome (answer them
    with `resume`). The session must be the caller's (404 otherwise); see the mapping in the docs."""
    return await streams.agui_stream(request, payload)


@router.post(
    "/ui-stream",
    response={200: None},
    openapi_extra=event_stream("UI message stream chunks, one per `data:` line, then `data: [DONE]`"),
)
async def ui_stream(request, payload: schemas.UIChatIn):
    """The Vercel AI SDK's UI message stream (`DefaultChatTransport`, `useChat`): `id` is the session's
    id; the run streams as UI message chunks (SSE, `x-vercel-ai-ui-message-stream: v1`) until it
    stops or pauses for approvals, then `[DONE]`. The session must be the caller's (404 otherwise)."""
    return await streams.ui_stream(request, payload)
