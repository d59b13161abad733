"""The engine's self-heal checks (workers, queue) and safe actions, all through the engine's services."""

from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Min

from juggernaut.engine import services
from juggernaut.engine.models import EngineState, Status, Task, Worker
from juggernaut.engine.services.common import NO_CAPABLE_WORKER, worker_command
from juggernaut.healing import Finding, Fix, Outcome, action, check
from juggernaut.timefmt import duration_text

SELFHEAL = "selfheal"


def _expired(now: datetime):
    return Task.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now)


def _requeueable():
    return Task.objects.filter(
        status=Status.FAILED, attempts__lt=F("max_attempts"), acknowledged_at__isnull=True
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
        found.append(
            Finding(
                "workers",
                "warning",
                f"Worker {w.name} is silent (last heartbeat {age} ago).",
                {"worker": w.name, "heartbeat_age_s": int(w.heartbeat_age(now).total_seconds())},
                Fix.manual(worker_command(w.name, w.capabilities or []), "Restart the worker."),
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
    failed = _requeueable().count()
    if failed:
        found.append(
            Finding(
                "queue",
                "warning",
                f"{failed} failed task(s) are under their retry limit.",
                {"count": failed},
                Fix.safe("requeue_failed", "Queue them again."),
                code="requeueable",
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


@action("release_expired_leases", touches="engine_tasks", cap=200, reversible=False, auto=True)
def release_expired_leases(*, dry_run: bool, cap: int, now: datetime) -> Outcome:
    """Release tasks whose lease expired: pending again with backoff, or escalated past max attempts."""
    ids = list(_expired(now).order_by("lease_expires_at").values_list("id", flat=True)[:cap])
    changes = [f"task #{pk}: running → pending (or escalated)" for pk in ids]
    if dry_run or not ids:
        return Outcome(
            len(ids), f"would release {len(ids)} task(s)" if dry_run else "nothing to release", changes
        )
    rescued, escalated = services.tasks_rescue(ids, now=now, why="lease expired (self-heal)", extra=None)
    return Outcome(rescued + escalated, f"released {rescued}, escalated {escalated}", changes)


@action("requeue_failed", touches="engine_tasks", cap=100, reversible=False, auto=False)
def requeue_failed(*, dry_run: bool, cap: int, now: datetime) -> Outcome:
    """Queue failed tasks that are under their retry limit again."""
    ids = list(_requeueable().order_by("id").values_list("id", flat=True)[:cap])
    changes = [f"task #{pk}: failed → pending" for pk in ids]
    if dry_run:
        return Outcome(len(ids), f"would requeue {len(ids)} task(s)", changes)
    for pk in ids:
        services.task_retry(pk, actor=SELFHEAL, now=now)
    return Outcome(len(ids), f"requeued {len(ids)} task(s)", changes)


@action("reset_blocked", touches="engine_tasks", cap=500, reversible=False, auto=True)
def reset_blocked(*, dry_run: bool, cap: int, now: datetime) -> Outcome:
    """Put tasks blocked for want of a capable worker back in the queue once one is alive."""
    ids = _unblockable(now)[:cap]
    changes = [f"task #{pk}: blocked → pending" for pk in ids]
    if dry_run:
        return Outcome(len(ids), f"would unblock {len(ids)} task(s)", changes)
    moved = services.tasks_unblock_capable(now=now)
    return Outcome(moved, f"unblocked {moved} task(s)", changes)


@action("clear_stale_pause", touches="engine_state", cap=1, reversible=True, auto=False)
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
