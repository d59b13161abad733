"""A run's record-keeping, shared by the loop and the operator's actions: its events, its one stop, its
budget, the session's state.

Every change publishes its event on ``chat.run.<id>`` in the same transaction; the start and the stop
of a run are also told on the ``chat`` topic, which the Overview's chat line follows.
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chat.models import (
    ACTIVE_RUN_STATUSES,
    OPEN_TOOL_STATUSES,
    ChatBudget,
    ChatRun,
    ChatSession,
    Phase,
    RunStatus,
    SessionStatus,
    StopReason,
    ToolExecution,
    ToolStatus,
)
from juggernaut.events import publish

TOPIC = "chat"
LOOP_METERS = ("steps", "iterations", "cost_usd", "retries")  # the watcher thread meters wall time

# What lets the work go on, per stop reason (a stop may say something more precise).
ACTIONS = {
    StopReason.COMPLETED: "Send another message to go on.",
    StopReason.MAX_ITERATIONS: "Send a message to let it continue, or raise the session's iteration limit.",
    StopReason.BUDGET_EXCEEDED: "Raise the session's limit (or the routing budget), then send a message to go on.",
    StopReason.TIME_LIMIT: "Send a message to continue, or raise the session's time limit.",
    StopReason.STUCK_LOOP: "Rephrase the request or give the missing information, then send it again.",
    StopReason.GUARDRAIL_BLOCKED: "Fix what makes the tool fail (see its error), then send the message again.",
    StopReason.LENGTH: "Ask it to continue, or raise the mode's output limit on the Routing page.",
    StopReason.CONTENT_FILTER: "Rephrase the request; the provider refused this content.",
    StopReason.MODEL_ERROR: "Send the message again; if it keeps failing, check the provider on the Routing page.",
    StopReason.CANCELLED: "Send a message when you want it to go on.",
    StopReason.INTERRUPTED: "Resume the run to continue from where it stopped.",
}


def emit(run: ChatRun, type: str, data: dict | None = None) -> None:
    """Publish one event of a run (inside the caller's transaction, if any)."""
    publish(run.topic, type, {"run_id": run.pk, **(data or {})}, correlation_id=run.pk)


def status_emit(run: ChatRun, phase: str, **extra) -> None:
    """Move the run to ``phase`` and say so."""
    with transaction.atomic():
        ChatRun.objects.filter(pk=run.pk).update(phase=phase)
        run.phase = phase
        emit(run, "status", {"phase": phase, "status": run.status, **extra})


def budget_for(session: ChatSession, *, policy_iterations: int) -> dict:
    """A run's limits: the session's overrides, else the mode's policy and the settings."""
    override = session.budgets.filter(run__isnull=True).first()
    defaults = {
        "max_steps": settings.CHAT_MAX_STEPS,
        "max_iterations": policy_iterations,
        "max_wall_seconds": settings.CHAT_MAX_WALL_SECONDS,
        "max_cost_usd": Decimal(str(settings.CHAT_MAX_COST_USD)),
        "max_retries": settings.CHAT_MAX_RETRIES_PER_FAILURE,
    }
    for name in ChatBudget.LIMITS:
        value = getattr(override, name, None) if override else None
        if value is not None:
            defaults[name] = value
    return defaults


def budget_emit(run: ChatRun, budget: ChatBudget, crossed: list[dict] | None = None) -> None:
    """Tell the run's limits and usage (after each model call and tool step); ``crossed`` names the
    thresholds (``CHAT_BUDGET_THRESHOLDS``) this change passed, each told once."""
    data = budget.as_dict()
    if crossed:
        data["crossed"] = crossed
    emit(run, "budget", data)


class Thresholds:
    """Which of a budget's thresholds (percent of a limit) a change of usage crossed, each exactly once.

    Usage only grows, so a threshold is crossed by the change that takes usage from below it to at
    or above it; what was already passed when the meter starts (a run resumed after an approval)
    is not told again. ``meters`` picks the limits this one watches (the watcher thread owns wall
    time, the loop the others)."""

    def __init__(self, usage: dict, meters: tuple[str, ...]) -> None:
        self.meters = meters
        self.percents = sorted(settings.CHAT_BUDGET_THRESHOLDS)
        self.last = {m: self._fraction(usage, m) for m in meters}

    @staticmethod
    def _fraction(usage: dict, meter: str) -> float:
        used, limit = usage[meter]["used"], usage[meter]["limit"]
        if limit is None or Decimal(str(limit)) <= 0:
            return 0.0
        return float(Decimal(str(used)) / Decimal(str(limit)))

    def crossed(self, usage: dict) -> list[dict]:
        out = []
        for meter in self.meters:
            before, now = self.last[meter], self._fraction(usage, meter)
            self.last[meter] = max(before, now)
            for p in self.percents:
                if before < p / 100 <= now:
                    out.append(
                        {
                            "meter": meter,
                            "percent": p,
                            "used": usage[meter]["used"],
                            "limit": usage[meter]["limit"],
                        }
                    )
        return out


def run_close(
    run_id: int,
    *,
    reason: str,
    detail: str,
    action: str = "",
    lease: str | None = None,
    only: tuple[str, ...] = ACTIVE_RUN_STATUSES,
    stale_before=None,
    queued_before=None,
    now=None,
) -> bool:
    """Stop a run for good, exactly once: the one conditional update that moves it out of an active
    status publishes the one ``stop_reason``. False when it was already stopped (or its lease lost, or
    it beat or was queued again after ``stale_before`` / ``queued_before``)."""
    now = now or timezone.now()
    action = action or ACTIONS[reason]
    with transaction.atomic():
        runs = ChatRun.objects.filter(pk=run_id, status__in=only)
        if lease is not None:
            runs = runs.filter(lease_owner=lease)
        if stale_before is not None:
            runs = runs.filter(heartbeat_at__lt=stale_before)
        if queued_before is not None:
            runs = runs.filter(queued_at__lt=queued_before)
        if (
            runs.update(
                status=RunStatus.STOPPED,
                phase=Phase.DONE,
                stop_reason=reason,
                stop_detail=detail,
                stop_action=action,
                ended_at=now,
                lease_owner="",
            )
            != 1
        ):
            return False
        run = ChatRun.objects.select_related("session").get(pk=run_id)
        ToolExecution.objects.filter(run=run, status__in=OPEN_TOOL_STATUSES).update(
            status=ToolStatus.INTERRUPTED if reason == StopReason.INTERRUPTED else ToolStatus.CANCELLED,
            ended_at=now,
        )
        ChatSession.objects.filter(pk=run.session_id).update(
            status=SessionStatus.IDLE,
            last_stop_reason=reason,
            last_stop_detail=detail,
            last_stop_action=action,
            guardrails=run.guardrails,
            updated_at=now,
        )
        emit(run, "stop_reason", {"reason": reason, "detail": detail, "action": action})
        publish(
            TOPIC,
            "run_stopped",
            {
                "run_id": run.pk,
                "session_id": run.session_id,
                "reason": reason,
                "message": f"chat run {run.pk} stopped: {reason.replace('_', ' ')}",
            },
        )
    return True


def session_status(session_id: int, status: str) -> None:
    """The session's status follows its run: running, waiting for approval, idle."""
    ChatSession.objects.filter(pk=session_id).update(status=status, updated_at=timezone.now())


def session_spent(session_id: int, *, cost: Decimal, steps: int) -> None:
    """Add a step's cost and steps to what the session used over all its runs."""
    ChatSession.objects.filter(pk=session_id).update(
        cost_usd=F("cost_usd") + cost, steps_used=F("steps_used") + steps
    )


def runs_interrupt_stale(*, now=None) -> list[int]:
    """Close runs whose process stopped sending heartbeats (died, killed, machine gone) as
    ``interrupted``; returns their ids. A run waiting for approval holds no process and is left alone."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.CHAT_RUN_LEASE_SECONDS)
    closed = []
    stale = ChatRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    for run_id, phase, beat in stale.values_list("pk", "phase", "heartbeat_at"):
        age = int((now - beat).total_seconds())
        detail = (
            f"The process running this run stopped sending heartbeats {age} s ago, while it was "
            f"{Phase(phase).label.lower()}: it died or was killed."
        )
        # Still running with an old heartbeat, re-checked in the update: a run that just beat is alive.
        if run_close(
            run_id,
            reason=StopReason.INTERRUPTED,
            detail=detail,
            only=(RunStatus.RUNNING,),
            stale_before=cutoff,
            now=now,
        ):
            closed.append(run_id)
    return closed


def runs_retry_queued(dispatch, *, now=None) -> tuple[list[int], list[int]]:
    """Runs queued longer than ``CHAT_QUEUED_TIMEOUT_SECONDS``: each is handed to ``dispatch`` once more
    (its job may have failed on a dead connection, or been lost with its process), and closed as
    interrupted when it waits that long again. Returns (retried ids, closed ids).

    Both moves are conditional updates on the run still being queued since before the cutoff, so two
    sweeps at once retry a run once and close it once."""
    now = now or timezone.now()
    timeout = settings.CHAT_QUEUED_TIMEOUT_SECONDS
    cutoff = now - timedelta(seconds=timeout)
    retried, closed = [], []
    waiting = ChatRun.objects.filter(status=RunStatus.QUEUED, queued_at__lt=cutoff)
    for run_id, requeues in waiting.values_list("pk", "requeues"):
        if requeues == 0:
            with transaction.atomic():
                moved = ChatRun.objects.filter(
                    pk=run_id, status=RunStatus.QUEUED, requeues=0, queued_at__lt=cutoff
                ).update(requeues=1, queued_at=now)
                if moved == 1:
                    run = ChatRun.objects.select_related("session__owner").get(pk=run_id)
                    emit(run, "status", {"phase": Phase.QUEUED, "status": RunStatus.QUEUED, "requeued": 1})
                    dispatch(run)
                    retried.append(run_id)
            continue
        detail = (
            f"No process picked this run up within {timeout} s, even after it was handed over a second "
            "time: the runner is down, or its jobs fail before they start."
        )
        if run_close(
            run_id,
            reason=StopReason.INTERRUPTED,
            detail=detail,
            action="Check that the runner is up (the Overview's jobs and engine lines), then resume the run.",
            only=(RunStatus.QUEUED,),
            queued_before=cutoff,
            now=now,
        ):
            closed.append(run_id)
    return retried, closed


def run_topic_readable(user, topic: str) -> bool:
    """A run's events are its session owner's, like the run itself (anyone else: no such topic)."""
    ident = topic.removeprefix("chat.run.")
    if not ident.isdigit() or len(ident) > 18:
        return False
    return ChatRun.objects.filter(pk=int(ident), session__owner=user).exists()
