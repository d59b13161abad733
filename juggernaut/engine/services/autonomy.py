"""The autonomy loop (one tick per schedule run): rescue expired leases, reroute, unblock rules, stuck detection.

Safe to run in several processes at once: every move locks its rows with SKIP LOCKED and re-checks the
status it expects, so a move is applied once.
"""

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from juggernaut.areas import Action
from juggernaut.engine import handlers
from juggernaut.engine.models import REASON_CLEARED, EngineState, Status, Task, Worker
from juggernaut.engine.services.common import (
    AUTONOMY,
    BLOCKED_TOO_LONG,
    CHUNK,
    DEPENDENCY_FAILED,
    FORGET_SILENT_WORKERS_AFTER,
    NEEDS_APPROVAL,
    NO_CAPABLE_WORKER,
    TOPIC,
    record,
    record_many,
    retry_or_escalate,
    wake_workers,
    worker_command,
)
from juggernaut.events import publish
from juggernaut.timefmt import duration_text


@dataclass
class TickReport:
    rescued: int = 0
    escalated: int = 0
    blocked: int = 0
    unblocked: int = 0
    waiting: int = 0
    findings: dict = field(default_factory=dict)
    new_findings: int = 0

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "findings"} | {"findings": len(self.findings)}


def _locked(ids: Iterable[int], extra: Q | None = None) -> list[Task]:
    """Lock the given tasks that still match ``extra``, skipping rows another tick holds."""
    qs = Task.objects.select_for_update(skip_locked=True).filter(pk__in=list(ids))
    if extra is not None:
        qs = qs.filter(extra)
    return list(qs.order_by("id"))


def _chunks(ids: Iterable[int], size: int = CHUNK):
    ids = list(ids)
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def tasks_rescue(ids: Iterable[int], *, now, why: str, extra: Q | None = None) -> tuple[int, int]:
    """Expired or orphaned leases: back to pending with backoff, or escalated after max attempts."""
    rescued = escalated = 0
    for chunk in _chunks(ids):
        with transaction.atomic():
            moves: dict[str, list[tuple[int, str]]] = defaultdict(list)
            for task in _locked(chunk, Q(status=Status.RUNNING) & (extra or Q())):
                status, fields = retry_or_escalate(task, now=now, error=why)
                Task.objects.filter(pk=task.pk, status=Status.RUNNING).move(now=now, **fields)
                moves[status].append((task.pk, Status.RUNNING))
            record_many(moves[Status.PENDING], Status.PENDING, AUTONOMY, why, "task_rescued", now)
            record_many(moves[Status.ESCALATED], Status.ESCALATED, AUTONOMY, why, "task_escalated", now)
            if moves[Status.PENDING]:
                wake_workers()
            rescued += len(moves[Status.PENDING])
            escalated += len(moves[Status.ESCALATED])
    return rescued, escalated


def _live_workers(now) -> list[Worker]:
    return list(Worker.objects.live(now).only("id", "capabilities", "kinds"))


def start_actions(kind: str, required: Iterable[str], *, name: str = "", label: str = "") -> list[Action]:
    """Exactly what an operator can do so that a worker runs tasks of ``kind`` needing ``required``.

    The built-in worker runs every kind the handler registry has, so a known kind needs that worker
    started (with the capabilities); a kind no handler knows needs one added, or an external worker
    that declares it (through the API).
    """
    need = sorted(required)
    name = name or f"worker-{kind}"
    if handlers.lookup(kind) is not None:
        return [Action(label or "Start a worker that runs it", command=worker_command(name, need))]
    caps = f", capabilities={json.dumps(need)}" if need else ""
    body = {"name": name, "kinds": [kind]} | ({"capabilities": need} if need else {})
    return [
        Action(
            f"Add a handler for {kind} in an app's handlers.py, then restart the worker",
            command=f'@register("{kind}"{caps})',
        ),
        Action(
            "or register an external worker that runs it",
            command=f"POST /api/engine/workers {json.dumps(body)}",
        ),
    ]


def actions_text(actions: list[Action]) -> str:
    """Actions as one line (a task's ``unblock_action``, at most 300 characters)."""
    return "; ".join(f"{a.label}: {a.command}" if a.command else a.label for a in actions)[:300]


def why_unrunnable(required: Iterable[str], kind: str, live: list[Worker]) -> tuple[str, list[Action]]:
    """Why no live worker would claim a task of ``kind`` that needs ``required``, and what would fix it.

    The same check as the claim (``Worker.can_run``): the kind first, then the capabilities.
    """
    need = sorted(required or [])
    if not live:
        return "No worker is alive to run it.", start_actions(kind, need)
    runners = [w for w in live if w.runs_kind(kind)]
    if not runners:
        return f"No live worker runs tasks of kind {kind}.", start_actions(kind, need)
    which = "live worker" if len(runners) == len(live) else f"live worker that runs {kind}"
    missing = sorted(set(need) - set().union(*(w.capabilities or [] for w in runners)))
    fix = start_actions(
        kind,
        need,
        name=f"worker-{missing[0] if missing else 'all'}",
        label=f"Start a worker with {', '.join(need)}",
    )
    if missing:
        return f"No {which} has {', '.join(missing)}.", fix
    return f"No single {which} has all of {', '.join(need)}.", fix


def tasks_unblock_capable(*, now=None) -> int:
    """Tasks blocked for want of a capable worker go back to pending once such a worker is alive."""
    now = now or timezone.now()
    live = _live_workers(now)
    candidates = [
        pk
        for pk, required, kind in Task.objects.filter(
            status=Status.BLOCKED, reason_code=NO_CAPABLE_WORKER
        ).values_list("id", "required_capabilities", "kind")
        if any(w.can_run(required, kind) for w in live)
    ]
    moved = 0
    for chunk in _chunks(candidates):
        with transaction.atomic():
            rows = _locked(chunk, Q(status=Status.BLOCKED, reason_code=NO_CAPABLE_WORKER))
            ids = [t.pk for t in rows]
            if not ids:
                continue
            Task.objects.filter(pk__in=ids).move(now=now, status=Status.PENDING, **REASON_CLEARED)
            record_many(
                [(pk, Status.BLOCKED) for pk in ids],
                Status.PENDING,
                AUTONOMY,
                "a capable worker is alive",
                "task_unblocked",
                now,
            )
            wake_workers()
            moved += len(ids)
    return moved


def _tasks_block_unrunnable(*, now) -> int:
    live = _live_workers(now)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    pending = Task.objects.filter(status=Status.PENDING).values_list("id", "required_capabilities", "kind")
    for pk, required, kind in pending:
        required = sorted(required or [])
        if not any(w.can_run(required, kind) for w in live):
            reason, actions = why_unrunnable(required, kind, live)
            groups[(reason, actions_text(actions))].append(pk)
    moved = 0
    for (reason, action), ids in groups.items():
        for chunk in _chunks(ids):
            with transaction.atomic():
                locked = [t.pk for t in _locked(chunk, Q(status=Status.PENDING))]
                if not locked:
                    continue
                Task.objects.filter(pk__in=locked).move(
                    now=now,
                    status=Status.BLOCKED,
                    reason_code=NO_CAPABLE_WORKER,
                    reason=reason,
                    unblock_action=action,
                )
                record_many(
                    [(pk, Status.PENDING) for pk in locked],
                    Status.BLOCKED,
                    AUTONOMY,
                    reason,
                    "task_blocked",
                    now,
                    reason_code=NO_CAPABLE_WORKER,
                )
                moved += len(locked)
    return moved


def _to_waiting(candidates: list[tuple[int, str, str, str, dict]], *, from_statuses, now) -> int:
    """Move ``(id, reason_code, reason, unblock_action, extra fields)`` rows to waiting_approval."""
    moved = 0
    by_id = {c[0]: c for c in candidates}
    for chunk in _chunks(by_id):
        with transaction.atomic():
            for task in _locked(chunk, Q(status__in=from_statuses)):
                _, code, reason, action, extra = by_id[task.pk]
                from_status = task.status
                changed = Task.objects.filter(pk=task.pk, status=from_status).move(
                    now=now,
                    status=Status.WAITING_APPROVAL,
                    reason_code=code,
                    reason=reason[:2000],
                    unblock_action=action[:300],
                    **extra,
                )
                if changed:
                    task.status, task.reason = Status.WAITING_APPROVAL, reason
                    record(task, from_status, AUTONOMY, reason, "task_waiting_approval", reason_code=code)
                    moved += 1
    return moved


def _tasks_apply_unblock_rules(*, now) -> int:
    """Policy approval, blocked too long, failed dependency → waiting_approval with a reason."""
    moved = 0
    policy = [
        (
            t.pk,
            NEEDS_APPROVAL,
            f"Tasks of kind “{t.kind}” need an operator's approval before they run (policy).",
            "Approve it to let it run, or cancel it.",
            {},
        )
        for t in Task.objects.filter(
            status__in=[Status.PENDING, Status.BLOCKED], needs_approval=True, approved_at__isnull=True
        ).only("id", "kind")
    ]
    moved += _to_waiting(policy, from_statuses=[Status.PENDING, Status.BLOCKED], now=now)

    dead_deps = [
        (
            t.pk,
            DEPENDENCY_FAILED,
            f"It depends on task #{t.depends_on_id} “{t.depends_on.title}”, which ended {t.depends_on.status}.",
            f"Approve to run it anyway, retry #{t.depends_on_id} first, or cancel it.",
            {},
        )
        for t in Task.objects.filter(
            status__in=[Status.PENDING, Status.BLOCKED],
            depends_on__status__in=[Status.FAILED, Status.ESCALATED, Status.CANCELLED],
        ).select_related("depends_on")
    ]
    moved += _to_waiting(dead_deps, from_statuses=[Status.PENDING, Status.BLOCKED], now=now)

    minutes = settings.ENGINE_BLOCKED_ESCALATE_MINUTES
    stale = [
        (
            t.pk,
            BLOCKED_TOO_LONG,
            f"Blocked for over {minutes} min: {t.reason or 'no reason recorded'}",
            f"Approve to queue it again now; or: {t.unblock_action or 'cancel it'}",
            {},
        )
        for t in Task.objects.filter(
            status=Status.BLOCKED, status_changed_at__lt=now - timedelta(minutes=minutes)
        ).only("id", "reason", "unblock_action")
    ]
    moved += _to_waiting(stale, from_statuses=[Status.BLOCKED], now=now)
    return moved


def stuck_findings(*, now=None) -> dict[str, dict]:
    """What looks stuck right now: an old queue head, overdue tasks and leases, silent workers.

    Computed from the clock alone, so the pages call it on every refresh and a state that becomes
    true by time passing shows without any event.
    """
    now = now or timezone.now()
    findings: dict[str, dict] = {}
    oldest = (
        Task.objects.claimable(now)
        .order_by("status_changed_at")
        .values_list("status_changed_at", flat=True)
        .first()
    )
    limit = timedelta(minutes=settings.ENGINE_STUCK_QUEUE_MINUTES)
    if oldest is not None and now - oldest > limit:
        findings["queue_age"] = {
            "kind": "queue_age",
            "message": f"The oldest pending task has waited {duration_text(now - oldest)}.",
            "seconds": int((now - oldest).total_seconds()),
        }
    for task in Task.objects.filter(status=Status.RUNNING).only(
        "id", "title", "kind", "started_at", "timeout_seconds", "status"
    ):
        if task.is_overdue(now):
            findings[f"task_overdue:{task.pk}:{task.started_at.timestamp():.0f}"] = {
                "kind": "task_overdue",
                "task_id": task.pk,
                "message": (
                    f"Task #{task.pk} “{task.title}” has run {duration_text(now - task.started_at)}, "
                    f"over its {task.timeout_seconds} s timeout."
                ),
            }
    for task in Task.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now).select_related(
        "lease_owner"
    ):
        owner = task.lease_owner.name if task.lease_owner else "its worker"
        findings[f"lease_expired:{task.pk}:{task.lease_incarnation}"] = {
            "kind": "lease_expired",
            "task_id": task.pk,
            "message": (
                f"Task #{task.pk} “{task.title}”: its lease ran out {duration_text(now - task.lease_expires_at)} "
                f"ago ({owner} stopped answering)."
            ),
        }
    for worker in Worker.objects.silent(now):
        findings[f"worker_silent:{worker.pk}:{worker.incarnation}"] = {
            "kind": "worker_silent",
            "worker_id": worker.pk,
            "message": f"Worker {worker.name} has been silent for {duration_text(worker.heartbeat_age(now))}.",
        }
    return findings


def _stuck_detect(*, now, report: TickReport) -> None:
    # Workers silent for a day are taken as gone, so their finding does not stay up forever.
    forgotten = Worker.objects.silent(now).filter(last_heartbeat__lt=now - FORGET_SILENT_WORKERS_AFTER)
    forgotten.update(stopped_at=now)
    findings = stuck_findings(now=now)
    with transaction.atomic():
        EngineState.load()
        # The row lock makes concurrent ticks agree on what is new, so each finding is announced once.
        state = EngineState.objects.select_for_update().get(pk=EngineState.PK)
        old = state.findings or {}
        for key in sorted(set(findings) - set(old)):
            publish(TOPIC, "stuck_detected", {"key": key, **findings[key]})
            report.new_findings += 1
        cleared = sorted(set(old) - set(findings))
        if cleared:
            publish(TOPIC, "stuck_cleared", {"keys": cleared, "count": len(cleared)})
        state.findings = findings
        state.last_tick_at = now
        state.save(update_fields=["findings", "last_tick_at"])
    report.findings = findings


def engine_tick(*, now=None) -> TickReport:
    """One pass of the autonomy loop: rescue, reroute, unblock rules, stuck detection.

    Safe to run in several processes at once: every move locks its rows (SKIP LOCKED) and re-checks
    the status it expects, so a move is applied once.
    """
    now = now or timezone.now()
    report = TickReport()
    expired = Task.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now).values_list(
        "id", flat=True
    )
    report.rescued, report.escalated = tasks_rescue(
        list(expired),
        now=now,
        why="lease expired: its worker stopped answering",
        extra=Q(lease_expires_at__lt=now),
    )
    report.unblocked = tasks_unblock_capable(now=now)
    report.blocked = _tasks_block_unrunnable(now=now)
    report.waiting = _tasks_apply_unblock_rules(now=now)
    _stuck_detect(now=now, report=report)
    return report
