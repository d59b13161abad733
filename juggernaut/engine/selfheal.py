"""The engine's self-heal checks (workers, queue) and safe actions, all through the engine's services."""

import re
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Min

from juggernaut.engine import services
from juggernaut.engine.models import EngineState, Status, Task, TaskEvent, Worker
from juggernaut.engine.services.common import NO_CAPABLE_WORKER, PERMANENT_ERROR, worker_command
from juggernaut.healing import Finding, Fix, Outcome, action, check
from juggernaut.timefmt import duration_text

SELFHEAL = "selfheal"


def _expired(now: datetime):
    return Task.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now)


def _failed_open():
    return Task.objects.filter(
        status=Status.FAILED, attempts__lt=F("max_attempts"), acknowledged_at__isnull=True
    )


def _fingerprint(error: str) -> str:
    """An error without what changes between attempts (numbers, ids), to tell "the same error again"."""
    return re.sub(r"[0-9a-f]{8,}|\d+", "#", error.strip().lower())[:200]


def _permanent(task: Task) -> str:
    """Why requeueing this failed task cannot help (empty when a fresh attempt might): the handler said
    the failure is permanent, or every attempt so far failed with the same error."""
    error = (task.last_error or "unknown error").strip().splitlines()[0][:200]
    if task.reason_code == PERMANENT_ERROR:
        return f"it failed permanently: {error}"
    if task.attempts < 2 or not task.last_error:
        return ""
    mark = _fingerprint(error)
    reasons = TaskEvent.objects.filter(task=task, from_status=Status.RUNNING).values_list("reason", flat=True)
    failures = [r for r in reasons if "fail" in r.lower() or "error" in r.lower()]
    if len(failures) >= 2 and all(mark in _fingerprint(r) for r in failures):
        return f"all {task.attempts} attempts failed with the same error: {error}"
    return ""


def _split_failed(cap: int | None = None) -> tuple[list[Task], list[tuple[Task, str]]]:
    """Failed tasks under their retry limit: (those a fresh attempt might fix, (permanent ones, why))."""
    rows = _failed_open().order_by("id")
    retry, permanent = [], []
    for task in rows[:cap] if cap else rows:
        why = _permanent(task)
        (permanent.append((task, why)) if why else retry.append(task))
    return retry, permanent


def tasks_settle(ids: list) -> tuple[str, str]:
    """The outcome of tasks a repair handed back to the queue: fixed once every one ran and succeeded,
    did not help as soon as one failed again (with its error), in progress until then."""
    rows = list(Task.objects.filter(pk__in=ids).values_list("id", "status", "last_error"))
    again = [
        (pk, st, err) for pk, st, err in rows if st in (Status.FAILED, Status.ESCALATED, Status.CANCELLED)
    ]
    if again:
        return "did_not_help", "; ".join(
            f"task #{pk} {st} again: {(err or 'no error recorded').strip().splitlines()[0][:200]}"
            for pk, st, err in again[:3]
        )
    done = sum(st == Status.DONE for _, st, _ in rows)
    if rows and done == len(rows):
        return "fixed", f"{done} task{'s' if done != 1 else ''} ran and succeeded"
    return (
        "in_progress",
        f"{len(rows) - done} of {len(rows)} task{'s' if len(rows) != 1 else ''} still to run",
    )


def _unblockable(now: datetime) -> list[int]:
    live = list(Worker.objects.live(now))
    return [
        pk
        for pk, required, kind in Task.objects.filter(
            status=Status.BLOCKED, reason_code=NO_CAPABLE_WORKER
        ).values_list("id", "required_capabilities", "kind")
        if any(w.can_run(required, kind) for w in live)
    ]


def _stale_pause(now: datetime) -> EngineState | None:
    state = EngineState.load()
    limit = timedelta(hours=settings.SELFHEAL_STALE_PAUSE_HOURS)
    return state if state.paused and state.paused_at and now - state.paused_at > limit else None


@check("workers")
def workers_check(now: datetime) -> list[Finding]:
    """Workers alive, their heartbeat age, and whether a live worker can run each pending task."""
    found: list[Finding] = []
    live = list(Worker.objects.live(now))
    for w in Worker.objects.silent(now).order_by("last_heartbeat")[:20]:
        age = duration_text(w.heartbeat_age(now))
        advice = w.restart_advice(now)
        found.append(
            Finding(
                "workers",
                "warning",
                f"Worker {w.name} is silent (last heartbeat {age} ago)."
                + (f" {advice[0].upper()}{advice[1:]}." if advice else ""),
                {"worker": w.name, "heartbeat_age_s": int(w.heartbeat_age(now).total_seconds())},
                None
                if advice
                else Fix.manual(worker_command(w.name, w.capabilities or []), "Restart the worker."),
                code=f"silent:{w.name}",
            )
        )
    pending = Task.objects.filter(status__in=[Status.PENDING, Status.BLOCKED])
    groups: Counter = Counter()
    for row in pending.values("kind", "required_capabilities").annotate(n=Count("id")).order_by():
        groups[(row["kind"], tuple(sorted(row["required_capabilities"] or [])))] += row["n"]
    if groups and not live:
        n = sum(groups.values())
        found.append(
            Finding(
                "workers",
                "critical",
                f"No worker is alive; {n} tasks wait to run.",
                {"waiting": n},
                Fix.manual(
                    worker_command("worker-1", sorted({c for _, r in groups for c in r})), "Start a worker."
                ),
                code="no_worker",
            )
        )
        return found
    for (kind, need), n in sorted(groups.items()):
        if not any(w.can_run(list(need), kind) for w in live):
            why, fixes = services.why_unrunnable(need, kind, live)
            found.append(
                Finding(
                    "workers",
                    "warning",
                    f"{n} {kind} task(s) have no capable worker: {why}",
                    {"kind": kind, "capabilities": list(need), "count": n},
                    Fix.manual(fixes[0].command, fixes[0].label),
                    code=f"no_capable:{kind}:{','.join(need)}",
                )
            )
    return found


@check("queue")
def queue_check(now: datetime) -> list[Finding]:
    """Queue depth and age, expired leases, escalated, requeueable and unblockable tasks, a stale pause."""
    found: list[Finding] = []
    expired = _expired(now).count()
    if expired:
        found.append(
            Finding(
                "queue",
                "critical",
                f"{expired} running task(s) hold an expired lease.",
                {"count": expired},
                Fix.safe(
                    "release_expired_leases",
                    "Release them back to the queue (or escalate past max attempts).",
                ),
                code="expired_leases",
            )
        )
    oldest = Task.objects.filter(status=Status.PENDING).aggregate(m=Min("created_at"))["m"]
    if oldest and now - oldest > timedelta(minutes=settings.ENGINE_STUCK_QUEUE_MINUTES):
        found.append(
            Finding(
                "queue",
                "warning",
                f"The oldest pending task has waited {duration_text(now - oldest)}.",
                {"oldest_pending_s": int((now - oldest).total_seconds())},
                Fix.manual("/engine/tasks/?status=pending", "See the queue and its workers."),
                code="queue_age",
            )
        )
    escalated = Task.objects.filter(status=Status.ESCALATED, acknowledged_at__isnull=True).count()
    if escalated:
        found.append(
            Finding(
                "queue",
                "warning",
                f"{escalated} escalated task(s) need a human.",
                {"count": escalated},
                Fix.manual("/engine/tasks/?attention=on", "Retry, cancel or acknowledge each one."),
                code="escalated",
            )
        )
    retry, permanent = _split_failed(cap=200)
    if retry:
        found.append(
            Finding(
                "queue",
                "warning",
                f"{len(retry)} failed task(s) are under their retry limit.",
                {"count": len(retry)},
                Fix.safe("requeue_failed", "Queue them again."),
                code="requeueable",
            )
        )
    for task, why in permanent[:10]:
        found.append(
            Finding(
                "queue",
                "warning",
                f"Task #{task.pk} ({task.title[:80]}): {why}",
                {"task": task.pk, "error": (task.last_error or "")[:300]},
                Fix.manual(
                    f"/engine/tasks/{task.pk}/",
                    "Requeueing cannot help: fix the cause, then retry it; or cancel or acknowledge it.",
                ),
                code=f"permanent:{task.pk}",
            )
        )
    unblock = len(_unblockable(now))
    if unblock:
        found.append(
            Finding(
                "queue",
                "warning",
                f"{unblock} blocked task(s) have a capable worker now.",
                {"count": unblock},
                Fix.safe("reset_blocked", "Put them back in the queue."),
                code="unblockable",
            )
        )
    stale = _stale_pause(now)
    if stale:
        found.append(
            Finding(
                "queue",
                "warning",
                f"The engine has been paused by {stale.paused_by} for "
                f"{duration_text(now - stale.paused_at)}.",
                {"paused_by": stale.paused_by},
                Fix.safe("clear_stale_pause", "Resume the engine."),
                code="stale_pause",
            )
        )
    return found


@action(
    "release_expired_leases",
    touches="engine_tasks",
    cap=200,
    reversible=False,
    auto=True,
    label="Release expired leases",
    settle=tasks_settle,
)
def release_expired_leases(*, dry_run: bool, cap: int, now: datetime) -> Outcome:
    """Release tasks whose lease expired: pending again with backoff, or escalated past max attempts."""
    rows = list(
        _expired(now).order_by("lease_expires_at").values_list("id", "attempts", "max_attempts")[:cap]
    )
    changes = [
        f"task #{pk}: running → "
        + (
            "pending: its worker stopped answering, a fresh attempt may finish it"
            if tries < most
            else f"escalated: its {most} attempts are used up, a human must look"
        )
        for pk, tries, most in rows
    ]
    ids = [pk for pk, _, _ in rows]
    if dry_run or not ids:
        return Outcome(
            len(ids), f"would release {len(ids)} task(s)" if dry_run else "nothing to release", changes
        )
    rescued, escalated = services.tasks_rescue(ids, now=now, why="lease expired (self-heal)", extra=None)
    return Outcome(rescued + escalated, f"released {rescued}, escalated {escalated}", changes, watch=ids)


@action(
    "requeue_failed",
    touches="engine_tasks",
    cap=100,
    reversible=False,
    auto=False,
    label="Requeue failed tasks",
    settle=tasks_settle,
)
def requeue_failed(*, dry_run: bool, cap: int, now: datetime) -> Outcome:
    """Queue failed tasks that are under their retry limit again, never one that failed permanently."""
    retry, permanent = _split_failed()
    retry = retry[:cap]
    changes = [
        f"task #{t.pk}: failed → pending: it failed once "
        f"({(t.last_error or 'no error recorded').strip().splitlines()[0][:120]}), a fresh attempt may succeed"
        for t in retry
    ] + [f"task #{t.pk}: left as it is: {why}; requeueing cannot help" for t, why in permanent[:50]]
    ids = [t.pk for t in retry]
    skipped = f"; left {len(permanent)} that cannot succeed" if permanent else ""
    if dry_run:
        return Outcome(len(ids), f"would requeue {len(ids)} task(s){skipped}", changes)
    for pk in ids:
        services.task_retry(pk, actor=SELFHEAL, now=now)
    return Outcome(len(ids), f"requeued {len(ids)} task(s){skipped}", changes, fixed=bool(ids), watch=ids)


@action(
    "reset_blocked",
    touches="engine_tasks",
    cap=500,
    reversible=False,
    auto=True,
    label="Unblock tasks a worker can run now",
    settle=tasks_settle,
)
def reset_blocked(*, dry_run: bool, cap: int, now: datetime) -> Outcome:
    """Put tasks blocked for want of a capable worker back in the queue once one is alive."""
    ids = _unblockable(now)[:cap]
    changes = [f"task #{pk}: blocked → pending: a live worker can run it now" for pk in ids]
    if dry_run:
        return Outcome(len(ids), f"would unblock {len(ids)} task(s)", changes)
    moved = services.tasks_unblock_capable(now=now)
    return Outcome(moved, f"unblocked {moved} task(s)", changes, watch=ids)


@action(
    "clear_stale_pause", touches="engine_state", cap=1, reversible=True, auto=False, label="Resume the engine"
)
def clear_stale_pause(*, dry_run: bool, cap: int, now: datetime) -> Outcome:
    """Resume an engine paused longer than SELFHEAL_STALE_PAUSE_HOURS."""
    stale = _stale_pause(now)
    if stale is None:
        return Outcome(0, "the engine is not paused (or not for long)")
    change = [f"engine: paused by {stale.paused_by} → running"]
    if dry_run:
        return Outcome(1, "would resume the engine", change)
    services.engine_resume(actor=SELFHEAL, now=now)
    return Outcome(1, "resumed the engine", change)
