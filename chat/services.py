"""Chat workflows: sessions, sending a message (which starts a run), Stop, Approve/Deny, Resume, the
sweep that closes runs whose process died, and where runs execute.

A session belongs to its owner: every lookup is scoped to them, so anyone else gets 404. A new message
while a run is active is refused (409 ``run_active``): one run per session at a time, which the
database enforces too.
"""

from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from chat import runs
from chat.apps import TASK_SOURCE
from chat.errors import ChatError
from chat.loop import run_execute
from chat.models import (
    ChatBudget,
    ChatMessage,
    ChatRun,
    ChatSession,
    Phase,
    Role,
    RunStatus,
    StopReason,
    ToolExecution,
    ToolStatus,
)
from juggernaut.auth import actor_of
from juggernaut.engine import services as engine
from juggernaut.events import last_seqs
from routing.services import RoutingError, budget_set, policy_get

RUNNERS = ("jobs", "engine", "manual")
MAX_CONTENT = 100_000


def session_get(user, session_id: int) -> ChatSession:
    """The caller's session, or 404 (someone else's session does not exist for them)."""
    session = ChatSession.objects.owned_by(user).filter(pk=session_id).first()
    if session is None:
        raise ChatError("not_found", f"no chat session {session_id}", status=404)
    return session


def run_get(user, run_id: int) -> ChatRun:
    """The caller's run (one of their sessions'), or 404."""
    run = ChatRun.objects.select_related("session", "budget").filter(pk=run_id, session__owner=user).first()
    if run is None:
        raise ChatError("not_found", f"no chat run {run_id}", status=404)
    return run


def _policy(mode: str):
    try:
        return policy_get(mode)
    except RoutingError as exc:
        raise ChatError("unknown_mode", exc.message, status=422) from exc


def session_create(user, *, mode: str, title: str = "") -> ChatSession:
    """Start a conversation in a routing mode."""
    _policy(mode)
    title = " ".join((title or "").split())[:200] or "New chat"
    return ChatSession.objects.create(owner=user, mode=mode, title=title)


def session_mode_set(session: ChatSession, mode: str) -> ChatSession:
    """Switch the session's routing mode; a run already going keeps its model, the next run uses the new one."""
    _policy(mode)
    session.mode = mode
    session.save(update_fields=["mode"])
    return session


def session_limits_set(session: ChatSession, **limits) -> ChatBudget:
    """Override the session's run limits (``None`` falls back to the mode's default)."""
    unknown = set(limits) - set(ChatBudget.LIMITS)
    if unknown:
        raise ChatError("bad_limit", f"unknown limit(s): {', '.join(sorted(unknown))}", status=422)
    for name, value in limits.items():
        if value is not None and value < 0:
            raise ChatError("bad_limit", f"{name} must not be negative", status=422)
    override, _ = ChatBudget.objects.update_or_create(session=session, run=None, defaults=limits)
    return override


def message_send(session: ChatSession, *, content: str, user) -> ChatRun:
    """Add the operator's message and start a run for it; refused while the session has an active run."""
    content = (content or "").strip()
    if not content:
        raise ChatError("empty_message", "the message is empty", status=422)
    if len(content) > MAX_CONTENT:
        raise ChatError("message_too_long", f"a message holds at most {MAX_CONTENT:,} characters", status=422)
    return _run_start(session, user=user, message=content)


def run_resume(run: ChatRun, *, user) -> ChatRun:
    """Go on from where an interrupted run ended, in a new run.

    Only an interruption (its process died) left work half done; a run that finished, was stopped or
    hit a limit ended on purpose, and its stop says what to do instead (usually: send a message)."""
    if ChatRun.objects.active().filter(session=run.session).exists():
        raise _busy(run.session)
    if run.stop_reason != StopReason.INTERRUPTED:
        raise ChatError(
            "not_resumable",
            f"Run {run.pk} was not interrupted ({run.get_stop_reason_display().lower()}), so there is "
            f"nothing to resume. {runs.ACTIONS[run.stop_reason]}",
            status=409,
            details={"stop_reason": run.stop_reason},
        )
    latest = ChatRun.objects.filter(session=run.session).order_by("-id").values_list("pk", flat=True).first()
    if latest != run.pk:
        raise ChatError(
            "not_latest", f"run {run.pk} is not the session's latest run; resume run {latest}", status=409
        )
    return _run_start(run.session, user=user, resumed_from=run)


def _busy(session: ChatSession) -> ChatError:
    active = ChatRun.objects.active().filter(session=session).first()
    what = f"run {active.pk} is {active.phase.replace('_', ' ')}" if active else "a run is active"
    return ChatError(
        "run_active",
        f"This session is busy: {what}. Stop it or wait for it to finish, then send the message again.",
        status=409,
        details={"run_id": active.pk if active else None},
    )


def _run_start(
    session: ChatSession, *, user, message: str = "", resumed_from: ChatRun | None = None
) -> ChatRun:
    policy = _policy(session.mode)
    limits = runs.budget_for(session, policy_iterations=policy.max_iterations)
    try:
        with transaction.atomic():
            run = ChatRun.objects.create(session=session, mode=session.mode, resumed_from=resumed_from)
            ChatBudget.objects.create(session=session, run=run, **limits)
            if message:
                ChatMessage.objects.create(session=session, run=run, role=Role.USER, content=message)
            ChatSession.objects.filter(pk=session.pk).update(status="running", updated_at=timezone.now())
            # The run's cost limit, held by routing's reservations: what the session spent before it, plus
            # the limit. One run per session at a time, so this budget is the run's alone while it runs.
            budget_set(
                scope="session",
                period="total",
                session=session.routing_key,
                limit_usd=session.cost_usd + Decimal(limits["max_cost_usd"]),
                announce=False,
            )
            run_dispatch(run, user=user)
    except IntegrityError:
        raise _busy(session) from None
    return run


def run_dispatch(run: ChatRun, *, user) -> None:
    """Have the run executed in the background, decoupled from the request (see docs/architecture.md)."""
    runner = settings.CHAT_RUNNER
    if runner == "jobs":
        transaction.on_commit(
            lambda: async_task("chat.tasks.run_execute", run.pk, task_name=f"chat-run-{run.pk}")
        )
    elif runner == "engine":
        engine.task_create(
            f"Chat run {run.pk}",
            kind="chat_run",
            payload={"run_id": run.pk},
            source=TASK_SOURCE,
            max_attempts=1,
            origin={"chat_run": run.pk},
            actor=actor_of(user),
        )
    elif runner != "manual":
        raise ChatError("bad_runner", f"CHAT_RUNNER must be one of {', '.join(RUNNERS)}", status=503)


def run_stop(run: ChatRun, *, user, actor: str = "") -> ChatRun:
    """Stop a run: at once when no process holds it (queued, waiting for approval); otherwise its loop
    notices within ``CHAT_CANCEL_POLL_SECONDS`` and stops itself, cancelling the stream or the tool wait."""
    actor = actor or actor_of(user)
    detail = f"Stopped by {actor}."
    for _ in range(3):  # the run may move between the two while we look
        if runs.run_close(
            run.pk, reason="cancelled", detail=detail, only=(RunStatus.QUEUED, RunStatus.WAITING_APPROVAL)
        ):
            break
        asked = ChatRun.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, cancel_requested_at__isnull=True
        ).update(cancel_requested_at=timezone.now(), cancel_requested_by=actor[:150])
        if asked or not ChatRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).exists():
            break
    run.refresh_from_db()
    return run


def run_approve(run: ChatRun, *, tool_call_id: str, approve: bool, user, actor: str = "") -> ToolExecution:
    """Approve or deny one call a run waits for; after the last decision the run goes on. ``actor``
    names who decided (the user, or their token), as history rows do."""
    actor = actor or actor_of(user)
    with transaction.atomic():
        if (
            not ChatRun.objects.select_for_update()
            .filter(pk=run.pk, status=RunStatus.WAITING_APPROVAL)
            .exists()
        ):
            raise ChatError("not_waiting", f"run {run.pk} is not waiting for an approval", status=409)
        execution = ToolExecution.objects.filter(run=run, tool_call_id=tool_call_id).first()
        if execution is None:
            raise ChatError("not_found", f"run {run.pk} has no tool call {tool_call_id[:100]!r}", status=404)
        decided = ToolExecution.objects.filter(pk=execution.pk, status=ToolStatus.WAITING_APPROVAL).update(
            status=ToolStatus.APPROVED if approve else ToolStatus.DENIED,
            decided_by=actor[:150],
            decided_at=timezone.now(),
        )
        if decided != 1:
            raise ChatError(
                "already_decided", f"tool call {tool_call_id} was already {execution.status}", status=409
            )
        execution.refresh_from_db()
        left = ToolExecution.objects.filter(run=run, status=ToolStatus.WAITING_APPROVAL).count()
        decision = {"tool_call_id": tool_call_id, "name": execution.tool, "approved": approve, "by": actor}
        if left:
            runs.emit(
                run,
                "status",
                {
                    "phase": Phase.WAITING_APPROVAL,
                    "status": RunStatus.WAITING_APPROVAL,
                    "decision": decision,
                    "waiting": left,
                },
            )
        else:
            ChatRun.objects.filter(pk=run.pk).update(
                status=RunStatus.QUEUED, phase=Phase.QUEUED, queued_at=timezone.now(), requeues=0
            )
            runs.session_status(run.session_id, "running")
            runs.emit(
                run, "status", {"phase": Phase.QUEUED, "status": RunStatus.QUEUED, "decision": decision}
            )
            run_dispatch(run, user=user)
    return execution


def session_decide(
    session: ChatSession, *, decisions: dict[str, bool], user, actor: str = ""
) -> tuple[ChatRun, int]:
    """Answer every call the session's waiting run asks approval for, at once (a frontend protocol's
    resume), and the run goes on; returns it and the last ``seq`` of its events before the answers.
    All or nothing: an answer missing, or one for a call that does not wait, changes nothing."""
    with transaction.atomic():
        run = (
            ChatRun.objects.select_for_update()
            .filter(session=session, status=RunStatus.WAITING_APPROVAL)
            .select_related("session")
            .first()
        )
        if run is None:
            raise ChatError(
                "not_waiting", f"session {session.pk} has no run waiting for an approval", status=409
            )
        waiting = set(
            ToolExecution.objects.filter(run=run, status=ToolStatus.WAITING_APPROVAL).values_list(
                "tool_call_id", flat=True
            )
        )
        if set(decisions) != waiting:
            raise ChatError(
                "bad_decisions",
                f"run {run.pk} waits for approval of {', '.join(sorted(waiting))}: answer each of them, "
                "and only them",
                status=422,
                details={"waiting": sorted(waiting), "answered": sorted(decisions)},
            )
        before = last_seqs([run.topic]).get(run.topic, 0)
        for call, approve in decisions.items():
            run_approve(run, tool_call_id=call, approve=approve, user=user, actor=actor)
    run.refresh_from_db()
    return run, before


def runs_sweep(*, now=None) -> list[int]:
    """The schedule's sweep over every state a run can wait in without a person: close runs whose process
    died (no heartbeat within the lease) as interrupted; hand a run nothing picked up to the runner once
    more, then close it. Returns the ids it closed. (A run waiting for approval waits for a person, who
    can approve, deny or stop it at any time.)"""
    closed = runs.runs_interrupt_stale(now=now)
    _, unpicked = runs.runs_retry_queued(lambda run: run_dispatch(run, user=run.session.owner), now=now)
    return closed + unpicked


def run_execute_job(run_id: int) -> str:
    """What the background runner calls (a django-q2 job or the engine's ``chat_run`` handler)."""
    return run_execute(run_id)
