"""Engine workflows: workers, the claim protocol, fenced completion, operator actions, the autonomy tick.

Every status change goes through here and, in the same transaction, writes a ``TaskEvent`` and
publishes an event on the ``engine`` topic. Changes that may race (claims, completions, the tick run
by several clusters) are conditional updates or row locks taken with SKIP LOCKED, so a change is
applied once or not at all.
"""

import json
import logging
import random
import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from juggernaut.engine import handlers
from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    EngineState,
    Source,
    Status,
    Task,
    TaskEvent,
    Worker,
)
from juggernaut.events import publish
from juggernaut.hq import AreaStatus

log = logging.getLogger(__name__)

TOPIC = "engine"
WAKE_CHANNEL = "juggernaut_engine"
AUTONOMY = "autonomy"
KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,99}$")
CAPABILITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
MAX_BACKOFF_SECONDS = 3600
FORGET_SILENT_WORKERS_AFTER = timedelta(hours=24)
CHUNK = 500

# reason_code values (the human text lives in Task.reason)
NO_CAPABLE_WORKER = "no_capable_worker"
NEEDS_APPROVAL = "needs_approval"
BLOCKED_TOO_LONG = "blocked_too_long"
DEPENDENCY_FAILED = "dependency_failed"
MAX_ATTEMPTS = "max_attempts"
PERMANENT_ERROR = "permanent_error"
RETRY_BACKOFF = "retry_backoff"


# --- helpers ---------------------------------------------------------------------------------------


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _lease() -> timedelta:
    return timedelta(seconds=settings.ENGINE_LEASE_SECONDS)


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError as exc:
        raise EngineError("bad_incarnation", "incarnation must be a UUID", status=422) from exc


def _not_found(what: str, ident: Any) -> EngineError:
    return EngineError("not_found", f"no {what} {ident}", status=404)


def _caps(value: Iterable[str] | None, *, field_name: str = "capabilities") -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not all(isinstance(c, str) for c in value):
        raise EngineError("bad_capabilities", f"{field_name} must be a list of strings", status=422)
    caps = sorted({c.strip() for c in value if c.strip()})
    bad = [c for c in caps if not CAPABILITY_RE.match(c)]
    if bad or len(caps) > 50:
        raise EngineError(
            "bad_capabilities",
            f"{field_name}: at most 50 names of letters, digits and _ . : / - (bad: {', '.join(bad)[:200]})",
            status=422,
        )
    return caps


def _task_data(task: Task, **extra: Any) -> dict:
    data = {
        "id": task.pk,
        "title": task.title,
        "kind": task.kind,
        "status": task.status,
        "priority": task.priority,
    }
    if task.reason:
        data["reason"] = task.reason
    data.update(extra)
    return data


def _record(task: Task, from_status: str, actor: str, reason: str, event_type: str, **extra: Any) -> None:
    """History row + live event for one task's change (inside the caller's transaction)."""
    TaskEvent.objects.create(
        task=task, from_status=from_status, to_status=task.status, actor=actor, reason=reason[:2000]
    )
    publish(TOPIC, event_type, _task_data(task, **({"from": from_status} if from_status else {}), **extra))


def _record_many(
    moves: list[tuple[int, str]], to_status: str, actor: str, reason: str, event_type: str, now, **extra
) -> None:
    """History rows for a batch of ``(task id, from status)`` moves and one live event for all."""
    if not moves:
        return
    TaskEvent.objects.bulk_create(
        [
            TaskEvent(
                task_id=pk, from_status=frm, to_status=to_status, actor=actor, reason=reason[:2000], at=now
            )
            for pk, frm in moves
        ]
    )
    ids = [pk for pk, _ in moves]
    publish(
        TOPIC,
        event_type,
        {
            "ids": ids[:200],
            "count": len(ids),
            "status": to_status,
            "reason": reason[:300],
            "message": f"{_n(len(ids), 'task')} {to_status.replace('_', ' ')}: {reason[:200]}",
            **extra,
        },
    )


class _LocalWake:
    """Wakes worker loops of this process when a task becomes claimable (the SQLite path)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.generation = 0

    def notify(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self.cond:
            if self.generation == seen:
                self.cond.wait(timeout)
            return self.generation


local_wake = _LocalWake()


def _wake_workers() -> None:
    """Tell workers to claim now: NOTIFY on Postgres (delivered at commit), in-process otherwise."""
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [WAKE_CHANNEL])
    transaction.on_commit(local_wake.notify)


def backoff_delay(attempts: int) -> timedelta:
    """``ENGINE_BACKOFF_BASE_SECONDS * 2**(attempts-1)``, capped at an hour, plus up to 25% jitter."""
    base = min(settings.ENGINE_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return timedelta(seconds=base * random.uniform(1.0, 1.25))


def _retry_or_escalate(task: Task, *, now, error: str) -> tuple[str, dict]:
    """The fields for a task that lost its attempt: back to the queue with backoff, or escalated."""
    fields: dict[str, Any] = {
        "lease_owner": None,
        "lease_incarnation": None,
        "lease_expires_at": None,
        "last_error": error[:10000],
        "status_changed_at": now,
        "updated_at": now,
    }
    if task.attempts >= task.max_attempts:
        fields.update(
            status=Status.ESCALATED,
            finished_at=now,
            next_attempt_at=None,
            reason_code=MAX_ATTEMPTS,
            reason=f"Gave up after {task.attempts} of {task.max_attempts} attempts. Last error: {error[:300]}",
            unblock_action="Fix the cause, then retry it (attempts start again), or cancel it.",
        )
        return Status.ESCALATED, fields
    delay = backoff_delay(task.attempts)
    fields.update(
        status=Status.PENDING,
        next_attempt_at=now + delay,
        reason_code=RETRY_BACKOFF,
        reason=(
            f"Attempt {task.attempts} of {task.max_attempts} failed ({error[:200]}); "
            f"next attempt in {int(delay.total_seconds())} s."
        ),
        unblock_action="",
    )
    return Status.PENDING, fields


# --- workers -----------------------------------------------------------------------------------------


def worker_register(
    name: str, *, capabilities: list[str] | None = None, concurrency: int = 1, now=None
) -> Worker:
    """Register (or re-register) a worker by name with a fresh incarnation.

    A re-registration means the previous process is gone: its running tasks are rescued at once
    instead of waiting for their leases to expire. Tasks blocked for want of these capabilities go
    back to the queue.
    """
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise EngineError("bad_name", "a worker needs a name of 1 to 100 characters", status=422)
    if not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
        raise EngineError("bad_concurrency", "concurrency must be between 1 and 256", status=422)
    caps = _caps(capabilities)
    now = now or timezone.now()
    fresh = {
        "capabilities": caps,
        "concurrency": concurrency,
        "incarnation": uuid.uuid4(),
        "last_heartbeat": now,
        "started_at": now,
        "stopped_at": None,
    }
    with transaction.atomic():
        worker = Worker.objects.select_for_update().filter(name=name).first()
        previous = worker.incarnation if worker else None
        if worker is None:
            try:
                with transaction.atomic():
                    worker = Worker.objects.create(name=name, **fresh)
            except IntegrityError:
                # Registered by someone else a moment ago: take the row over like a restart.
                worker = Worker.objects.select_for_update().get(name=name)
                previous = worker.incarnation
        if previous is not None:
            for key, value in fresh.items():
                setattr(worker, key, value)
            worker.save()
            _rescue(
                Task.objects.filter(
                    status=Status.RUNNING, lease_owner=worker, lease_incarnation=previous
                ).values_list("id", flat=True),
                now=now,
                why=f"worker {name} restarted while running it",
                extra=Q(lease_incarnation=previous),
            )
        publish(
            TOPIC,
            "worker_registered",
            {"id": worker.pk, "name": name, "capabilities": caps, "concurrency": concurrency},
        )
    tasks_unblock_capable(now=now)
    return worker


def _worker_checked(worker: Worker | int, incarnation: uuid.UUID | str) -> Worker:
    worker_id = worker.pk if isinstance(worker, Worker) else worker
    found = Worker.objects.filter(pk=worker_id).first()
    if found is None:
        raise _not_found("worker", worker_id)
    if found.incarnation != _uuid(incarnation):
        raise EngineError(
            "stale_incarnation",
            f"worker {found.name} was registered again since; register to get a fresh incarnation",
            status=409,
        )
    if found.stopped_at is not None:
        raise EngineError("worker_stopped", f"worker {found.name} has stopped; register again", status=409)
    return found


def worker_heartbeat(worker: Worker | int, *, incarnation: uuid.UUID | str, now=None) -> Worker:
    """Record that the worker is alive (fenced by incarnation)."""
    found = _worker_checked(worker, incarnation)
    now = now or timezone.now()
    Worker.objects.filter(pk=found.pk, incarnation=found.incarnation).update(last_heartbeat=now)
    found.last_heartbeat = now
    return found


def worker_stop(worker: Worker | int, *, incarnation: uuid.UUID | str, now=None) -> Worker:
    """A clean shutdown: the worker leaves, and what it still holds goes back without losing an attempt."""
    found = _worker_checked(worker, incarnation)
    now = now or timezone.now()
    with transaction.atomic():
        Worker.objects.filter(pk=found.pk, incarnation=found.incarnation).update(stopped_at=now)
        held = Task.objects.filter(
            status=Status.RUNNING, lease_owner=found, lease_incarnation=found.incarnation
        ).values_list("id", flat=True)
        for task_id in list(held):
            _release(task_id, found, found.incarnation, reason=f"worker {found.name} stopped", now=now)
        publish(TOPIC, "worker_stopped", {"id": found.pk, "name": found.name})
    found.stopped_at = now
    return found


# --- tasks: create and claim -------------------------------------------------------------------------


def task_create(
    title: str,
    *,
    kind: str,
    payload: dict | None = None,
    priority: int = 0,
    required_capabilities: list[str] | None = None,
    source: str = Source.OPERATOR,
    dedupe_key: str | None = None,
    max_attempts: int | None = None,
    needs_approval: bool | None = None,
    depends_on: int | Task | None = None,
    timeout_seconds: int | None = None,
    origin: dict | None = None,
    actor: str = "operator",
) -> Task:
    """Queue a task, or return the open task that already holds ``dedupe_key``.

    Defaults come from the kind's handler: its capabilities, timeout and approval policy. A kind no
    handler here knows requires a capability named after the kind, so only a worker that declares
    it will take it. The returned task has ``was_created`` set.
    """
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise EngineError("bad_title", "a task needs a title of 1 to 200 characters", status=422)
    if not isinstance(kind, str) or not KIND_RE.match(kind):
        raise EngineError(
            "bad_kind",
            "kind: 1 to 100 lowercase letters, digits and _ . : - (e.g. 'logs.triage')",
            status=422,
        )
    if payload is not None and not isinstance(payload, dict):
        raise EngineError("bad_payload", "payload must be a JSON object", status=422)
    if not isinstance(priority, int) or not -1000 <= priority <= 1000:
        raise EngineError("bad_priority", "priority must be a whole number from -1000 to 1000", status=422)
    if source not in Source.values:
        raise EngineError("bad_source", f"source must be one of {', '.join(Source.values)}", status=422)
    if dedupe_key is not None and (not dedupe_key.strip() or len(dedupe_key) > 200):
        raise EngineError("bad_dedupe_key", "dedupe_key must be 1 to 200 characters", status=422)
    if max_attempts is not None and not 1 <= max_attempts <= 100:
        raise EngineError("bad_max_attempts", "max_attempts must be between 1 and 100", status=422)
    if timeout_seconds is not None and not 1 <= timeout_seconds <= 7 * 86400:
        raise EngineError("bad_timeout", "timeout_seconds must be between 1 and 604800", status=422)
    handler = handlers.lookup(kind)
    if required_capabilities is None:
        required = list(handler.capabilities) if handler else [kind]
    else:
        required = _caps(required_capabilities, field_name="required_capabilities")
    needs = handler.needs_approval if needs_approval is None and handler else bool(needs_approval)
    dependency = None
    if depends_on is not None:
        dep_id = depends_on.pk if isinstance(depends_on, Task) else depends_on
        dependency = Task.objects.filter(pk=dep_id).first()
        if dependency is None:
            raise EngineError("bad_dependency", f"depends_on: no task {dep_id}", status=422)

    if dedupe_key:
        existing = Task.objects.open().filter(dedupe_key=dedupe_key).first()
        if existing is not None:
            existing.was_created = False
            return existing

    now = timezone.now()
    task = Task(
        title=title,
        kind=kind,
        payload=payload or {},
        priority=priority,
        required_capabilities=required,
        source=source,
        dedupe_key=dedupe_key or None,
        needs_approval=needs,
        depends_on=dependency,
        timeout_seconds=timeout_seconds or (handler.timeout if handler else handlers.DEFAULT_TIMEOUT_SECONDS),
        origin=origin or {},
        created_by=actor[:150],
        created_at=now,
        status_changed_at=now,
    )
    if max_attempts is not None:
        task.max_attempts = max_attempts
    reason = ""
    if needs:
        task.status = Status.WAITING_APPROVAL
        task.reason_code = NEEDS_APPROVAL
        task.reason = reason = f"Tasks of kind “{kind}” need an operator's approval before they run (policy)."
        task.unblock_action = "Approve it to let it run, or cancel it."
    try:
        with transaction.atomic():
            task.save(force_insert=True)
            _record(task, "", actor, reason or "created", "task_created", source=task.source)
            if task.status == Status.PENDING:
                _wake_workers()
    except IntegrityError:
        existing = Task.objects.open().filter(dedupe_key=dedupe_key).first() if dedupe_key else None
        if existing is None:
            raise
        existing.was_created = False
        return existing
    task.was_created = True
    return task


CLAIM_SQL = """
WITH me AS (
    UPDATE engine_workers SET last_heartbeat = %(now)s
    WHERE id = %(worker)s AND incarnation = %(incarnation)s AND stopped_at IS NULL
    RETURNING capabilities
)
UPDATE engine_tasks
SET status = 'running', lease_owner_id = %(worker)s, lease_incarnation = %(incarnation)s,
    lease_expires_at = %(until)s, attempts = attempts + 1, started_at = %(now)s,
    status_changed_at = %(now)s, updated_at = %(now)s, next_attempt_at = NULL,
    reason_code = '', reason = '', unblock_action = ''
WHERE id IN (
    SELECT c.id FROM engine_tasks c
    WHERE c.status = 'pending'
      AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= %(now)s)
      AND c.required_capabilities <@ (SELECT capabilities FROM me)
      AND (c.depends_on_id IS NULL
           OR EXISTS (SELECT 1 FROM engine_tasks d WHERE d.id = c.depends_on_id AND d.status = 'done'))
      AND NOT EXISTS (SELECT 1 FROM engine_state s WHERE s.paused)
    ORDER BY c.priority DESC, c.created_at, c.id
    LIMIT %(limit)s
    FOR UPDATE OF c SKIP LOCKED
)
RETURNING *, (SELECT w.name FROM engine_workers w WHERE w.id = %(worker)s) AS worker_name
"""


def task_claim(worker: Worker | int, *, incarnation: uuid.UUID | str, limit: int = 1, now=None) -> list[Task]:
    """Lease up to ``limit`` due tasks the worker can run, highest priority first, then oldest.

    Postgres: one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING``, so
    concurrent workers never wait for or take the same row; the same statement checks the worker's
    incarnation, reads its capabilities and records its heartbeat. SQLite: a compare-and-set update
    per candidate. Nothing is claimed while the engine is paused.
    """
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise EngineError("bad_limit", "limit must be between 1 and 100", status=422)
    worker_id = worker.pk if isinstance(worker, Worker) else worker
    incarnation = _uuid(incarnation)
    now = now or timezone.now()
    until = now + _lease()
    with transaction.atomic():
        if _is_postgres():
            params = {
                "worker": worker_id,
                "incarnation": incarnation,
                "until": until,
                "now": now,
                "limit": limit,
            }
            tasks = sorted(
                Task.objects.raw(CLAIM_SQL, params), key=lambda t: (-t.priority, t.created_at, t.pk)
            )
            if not tasks:
                _worker_checked(worker_id, incarnation)  # say why, if it is the worker's fault
                return []
            name = tasks[0].worker_name
        else:
            found = _worker_checked(worker_id, incarnation)
            Worker.objects.filter(pk=found.pk).update(last_heartbeat=now)
            ids = _claim_cas(found, now=now, until=until, limit=limit)
            tasks = list(Task.objects.filter(pk__in=ids).claim_order()) if ids else []
            name = found.name
        # One event per batch keeps the hot path cheap; the history still has a row per task.
        _record_many(
            [(t.pk, Status.PENDING) for t in tasks],
            Status.RUNNING,
            f"worker:{name}",
            "claimed",
            "task_claimed",
            now,
            worker=name,
            message=f"{name} claimed {_n(len(tasks), 'task')}",
        )
    return tasks


def _claim_cas(worker: Worker, *, now, until, limit: int) -> list[int]:
    if EngineState.objects.filter(pk=1, paused=True).exists():
        return []
    caps = set(worker.capabilities or [])
    claimed: list[int] = []
    skipped: list[int] = []
    batch = max(50, limit * 4)
    while len(claimed) < limit:
        rows = list(
            Task.objects.claimable(now)
            .exclude(pk__in=skipped)
            .claim_order()
            .values_list("id", "required_capabilities")[:batch]
        )
        if not rows:
            break
        for pk, required in rows:
            if not set(required or []) <= caps:
                skipped.append(pk)
                continue
            changed = Task.objects.filter(pk=pk, status=Status.PENDING).update(
                status=Status.RUNNING,
                lease_owner=worker,
                lease_incarnation=worker.incarnation,
                lease_expires_at=until,
                attempts=F("attempts") + 1,
                started_at=now,
                status_changed_at=now,
                updated_at=now,
                next_attempt_at=None,
                reason_code="",
                reason="",
                unblock_action="",
            )
            if changed == 1:
                claimed.append(pk)
            else:
                skipped.append(pk)
            if len(claimed) >= limit:
                break
    return claimed


# --- tasks: fenced reports from the worker holding the lease ------------------------------------------


def _fenced(task_id: int, worker_id: int, incarnation: uuid.UUID | str):
    return Task.objects.filter(
        pk=task_id, lease_owner_id=worker_id, lease_incarnation=_uuid(incarnation), status=Status.RUNNING
    )


def _lease_lost(task_id: int) -> EngineError:
    task = Task.objects.filter(pk=task_id).only("status").first()
    if task is None:
        return _not_found("task", task_id)
    return EngineError(
        "lease_lost",
        f"task #{task_id} is not leased to this worker incarnation (it is {task.status}); nothing was changed",
        status=409,
        details={"status": task.status},
    )


def task_heartbeat(task_id: int, *, worker_id: int, incarnation: uuid.UUID | str, now=None):
    """Extend the lease of a task the caller still holds; returns the new expiry."""
    now = now or timezone.now()
    until = now + _lease()
    if _fenced(task_id, worker_id, incarnation).update(lease_expires_at=until, updated_at=now) != 1:
        raise _lease_lost(task_id)
    return until


COMPLETE_SQL = """
UPDATE engine_tasks
SET status = 'done', result = %(result)s::jsonb, finished_at = %(now)s, status_changed_at = %(now)s,
    updated_at = %(now)s, lease_incarnation = NULL, lease_expires_at = NULL,
    reason_code = '', reason = '', unblock_action = ''
WHERE id = %(id)s AND lease_owner_id = %(worker)s AND lease_incarnation = %(incarnation)s
  AND status = 'running'
RETURNING *,
    (SELECT w.name FROM engine_workers w WHERE w.id = engine_tasks.lease_owner_id) AS worker_name,
    EXISTS (SELECT 1 FROM engine_tasks d WHERE d.depends_on_id = engine_tasks.id AND d.status = 'pending')
        AS has_dependents
"""


def task_complete(
    task_id: int, *, worker_id: int, incarnation: uuid.UUID | str, result: Any = None, now=None
) -> Task:
    """Mark the task done, only if the caller still holds its lease (else 409 and nothing changes).

    The fence and the change are one conditional UPDATE (with RETURNING on Postgres).
    """
    now = now or timezone.now()
    incarnation = _uuid(incarnation)
    with transaction.atomic():
        if _is_postgres():
            params = {
                "result": None if result is None else json.dumps(result, cls=DjangoJSONEncoder),
                "now": now,
                "id": task_id,
                "worker": worker_id,
                "incarnation": incarnation,
            }
            rows = list(Task.objects.raw(COMPLETE_SQL, params))
            if not rows:
                raise _lease_lost(task_id)
            task = rows[0]
            who, wake = task.worker_name, task.has_dependents
        else:
            changed = _fenced(task_id, worker_id, incarnation).update(
                status=Status.DONE,
                result=result,
                finished_at=now,
                status_changed_at=now,
                updated_at=now,
                lease_incarnation=None,
                lease_expires_at=None,
                reason_code="",
                reason="",
                unblock_action="",
            )
            if changed != 1:
                raise _lease_lost(task_id)
            task = Task.objects.select_related("lease_owner").get(pk=task_id)
            who = task.lease_owner.name if task.lease_owner else str(worker_id)
            wake = Task.objects.filter(depends_on_id=task_id, status=Status.PENDING).exists()
        _record(task, Status.RUNNING, f"worker:{who}", "completed", "task_done", worker=who)
        if wake:
            _wake_workers()
    return task


def task_fail(
    task_id: int,
    *,
    worker_id: int,
    incarnation: uuid.UUID | str,
    error: str,
    permanent: bool = False,
    now=None,
) -> Task:
    """Report a failed attempt: retry later with backoff, or fail/escalate (fenced like complete)."""
    now = now or timezone.now()
    error = (error or "unknown error").strip()[:10000]
    with transaction.atomic():
        task = _fenced(task_id, worker_id, incarnation).select_for_update().first()
        if task is None:
            raise _lease_lost(task_id)
        if permanent:
            status = Status.FAILED
            fields = {
                "status": status,
                "lease_owner": None,
                "lease_incarnation": None,
                "lease_expires_at": None,
                "finished_at": now,
                "status_changed_at": now,
                "updated_at": now,
                "last_error": error,
                "reason_code": PERMANENT_ERROR,
                "reason": f"Failed permanently: {error[:300]}",
                "unblock_action": "Fix the cause, then retry it, or cancel it.",
            }
        else:
            status, fields = _retry_or_escalate(task, now=now, error=error)
        _fenced(task_id, worker_id, incarnation).update(**fields)
        task.refresh_from_db()
        event = "task_escalated" if status == Status.ESCALATED else "task_failed"
        worker = Worker.objects.filter(pk=worker_id).values_list("name", flat=True).first()
        _record(
            task,
            Status.RUNNING,
            f"worker:{worker}",
            task.reason,
            event,
            error=error[:300],
            retry_at=task.next_attempt_at.isoformat() if task.next_attempt_at else None,
        )
    return task


def _release(task_id: int, worker: Worker, incarnation: uuid.UUID, *, reason: str, now) -> bool:
    """Back to the queue without using up an attempt (the worker gave it back, it did not fail)."""
    changed = _fenced(task_id, worker.pk, incarnation).update(
        status=Status.PENDING,
        attempts=Greatest(F("attempts") - 1, 0),
        lease_owner=None,
        lease_incarnation=None,
        lease_expires_at=None,
        status_changed_at=now,
        updated_at=now,
        next_attempt_at=None,
    )
    if changed != 1:
        return False
    task = Task.objects.get(pk=task_id)
    _record(task, Status.RUNNING, f"worker:{worker.name}", reason, "task_released")
    _wake_workers()
    return True


def task_release(
    task_id: int, *, worker_id: int, incarnation: uuid.UUID | str, reason: str = "released", now=None
) -> None:
    """A worker gives a task back (shutting down): pending again, the attempt not counted."""
    worker = Worker.objects.filter(pk=worker_id).first()
    if worker is None:
        raise _not_found("worker", worker_id)
    with transaction.atomic():
        if not _release(task_id, worker, _uuid(incarnation), reason=reason, now=now or timezone.now()):
            raise _lease_lost(task_id)


# --- operator actions ----------------------------------------------------------------------------------


def _transition(
    task_id: int,
    *,
    allowed: Iterable[str],
    verb: str,
    actor: str,
    event_type: str,
    fields: dict,
    reason: str,
    now,
) -> Task:
    """Move one task if it is in an allowed status (locked, so a racing change cannot slip between)."""
    allowed = list(allowed)
    task = Task.objects.select_for_update().filter(pk=task_id).first()
    if task is None:
        raise _not_found("task", task_id)
    if task.status not in allowed:
        raise EngineError(
            "illegal_transition",
            f"task #{task_id} is {task.status}; only {', '.join(allowed)} tasks can be {verb}",
            status=409,
            details={"status": task.status, "allowed": allowed},
        )
    from_status = task.status
    for key, value in {**fields, "status_changed_at": now}.items():
        setattr(task, key, value)
    try:
        with transaction.atomic():
            task.save()
    except IntegrityError as exc:
        other = Task.objects.open().filter(dedupe_key=task.dedupe_key).exclude(pk=task_id).first()
        raise EngineError(
            "dedupe_conflict",
            f"task #{other.pk if other else '?'} is already open with the same dedupe key",
            status=409,
        ) from exc
    _record(task, from_status, actor, reason, event_type)
    if task.status == Status.PENDING:
        _wake_workers()
    return task


_CLEAR_REASON = {"reason_code": "", "reason": "", "unblock_action": ""}
_CLEAR_LEASE = {"lease_owner": None, "lease_incarnation": None, "lease_expires_at": None}


def task_approve(task_id: int, *, actor: str, now=None) -> Task:
    """Let a task that waits for approval run; a failed dependency is then ignored (run anyway)."""
    now = now or timezone.now()
    with transaction.atomic():
        current = Task.objects.select_for_update().filter(pk=task_id).first()
        fields: dict[str, Any] = {
            "status": Status.PENDING,
            "approved_by": actor[:150],
            "approved_at": now,
            "next_attempt_at": None,
            **_CLEAR_REASON,
        }
        dependency = current.depends_on if current is not None and current.depends_on_id else None
        if (
            dependency is not None
            and dependency.status in CLOSED_STATUSES
            and dependency.status != Status.DONE
        ):
            fields["depends_on"] = None  # approving means: run it anyway
        return _transition(
            task_id,
            allowed=[Status.WAITING_APPROVAL],
            verb="approved",
            actor=actor,
            event_type="task_approved",
            fields=fields,
            reason=f"approved by {actor}",
            now=now,
        )


def task_retry(task_id: int, *, actor: str, now=None) -> Task:
    """Queue a task again now, with a fresh set of attempts."""
    now = now or timezone.now()
    with transaction.atomic():
        return _transition(
            task_id,
            allowed=[
                Status.FAILED,
                Status.ESCALATED,
                Status.CANCELLED,
                Status.BLOCKED,
                Status.WAITING_APPROVAL,
                Status.PENDING,
            ],
            verb="retried",
            actor=actor,
            event_type="task_retried",
            fields={
                "status": Status.PENDING,
                "attempts": 0,
                "next_attempt_at": None,
                "finished_at": None,
                "result": None,
                "approved_by": actor[:150],
                "approved_at": now,
                **_CLEAR_REASON,
                **_CLEAR_LEASE,
            },
            reason=f"retried by {actor}",
            now=now,
        )


def task_cancel(task_id: int, *, actor: str, reason: str = "", now=None) -> Task:
    """Cancel an open task; a worker still running it finds its lease gone when it reports."""
    now = now or timezone.now()
    text = f"cancelled by {actor}" + (f": {reason}" if reason else "")
    with transaction.atomic():
        return _transition(
            task_id,
            allowed=OPEN_STATUSES,
            verb="cancelled",
            actor=actor,
            event_type="task_cancelled",
            fields={
                "status": Status.CANCELLED,
                "finished_at": now,
                "next_attempt_at": None,
                **_CLEAR_LEASE,
                "reason_code": "cancelled",
                "reason": text[:2000],
                "unblock_action": "Retry it to queue it again.",
            },
            reason=text,
            now=now,
        )


def task_reassign(task_id: int, *, actor: str, worker_name: str | None = None, now=None) -> Task:
    """Put a task back in the queue, taking it from its worker if running (no attempt is charged).

    With ``worker_name``, the task's required capabilities are narrowed to those that worker has,
    so that worker (and any like it) can take it.
    """
    now = now or timezone.now()
    with transaction.atomic():
        current = Task.objects.select_for_update().filter(pk=task_id).first()
        if current is None:
            raise _not_found("task", task_id)
        fields: dict[str, Any] = {
            "status": Status.PENDING,
            "next_attempt_at": None,
            **_CLEAR_LEASE,
            **_CLEAR_REASON,
        }
        if current.status == Status.RUNNING:
            fields["attempts"] = max(current.attempts - 1, 0)
        text = f"reassigned by {actor}"
        if worker_name:
            target = Worker.objects.filter(name=worker_name).first()
            if target is None:
                raise _not_found("worker", worker_name)
            have = set(target.capabilities or [])
            fields["required_capabilities"] = [c for c in current.required_capabilities or [] if c in have]
            text += f" to worker {target.name}'s capabilities"
        return _transition(
            task_id,
            allowed=OPEN_STATUSES,
            verb="reassigned",
            actor=actor,
            event_type="task_reassigned",
            fields=fields,
            reason=text,
            now=now,
        )


def task_prioritize(task_id: int, *, priority: int, actor: str, now=None) -> Task:
    """Change an open task's priority (recorded in its history like a status change)."""
    if not isinstance(priority, int) or not -1000 <= priority <= 1000:
        raise EngineError("bad_priority", "priority must be a whole number from -1000 to 1000", status=422)
    now = now or timezone.now()
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=task_id).first()
        if task is None:
            raise _not_found("task", task_id)
        if task.status not in OPEN_STATUSES:
            raise EngineError(
                "illegal_transition",
                f"task #{task_id} is {task.status}; only open tasks can be re-prioritised",
                status=409,
                details={"status": task.status},
            )
        old = task.priority
        task.priority = priority
        task.save(update_fields=["priority", "updated_at"])
        _record(task, task.status, actor, f"priority {old} → {priority} by {actor}", "task_updated")
    return task


# --- the stop switch ----------------------------------------------------------------------------------


def engine_pause(*, actor: str, reason: str = "", now=None) -> EngineState:
    """Stop all claiming (running tasks finish). Pausing a paused engine changes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        EngineState.get()
        state = EngineState.objects.select_for_update().get(pk=1)
        if not state.paused:
            state.paused, state.paused_by, state.paused_at = True, actor[:150], now
            state.reason = (reason or "").strip()[:2000]
            state.save()
            publish(
                TOPIC, "engine_paused", {"by": actor, "reason": state.reason, "message": f"paused by {actor}"}
            )
    return state


def engine_resume(*, actor: str, now=None) -> EngineState:
    """Let workers claim again. Resuming a running engine changes nothing."""
    with transaction.atomic():
        EngineState.get()
        state = EngineState.objects.select_for_update().get(pk=1)
        if state.paused:
            state.paused, state.paused_by, state.paused_at, state.reason = False, "", None, ""
            state.save()
            publish(TOPIC, "engine_resumed", {"by": actor, "message": f"resumed by {actor}"})
            _wake_workers()
    return state


# --- the autonomy loop ----------------------------------------------------------------------------------


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


def _rescue(ids: Iterable[int], *, now, why: str, extra: Q | None = None) -> tuple[int, int]:
    """Expired or orphaned leases: back to pending with backoff, or escalated after max attempts."""
    rescued = escalated = 0
    for chunk in _chunks(ids):
        with transaction.atomic():
            moves: dict[str, list[tuple[int, str]]] = defaultdict(list)
            for task in _locked(chunk, Q(status=Status.RUNNING) & (extra or Q())):
                status, fields = _retry_or_escalate(task, now=now, error=why)
                Task.objects.filter(pk=task.pk, status=Status.RUNNING).update(**fields)
                moves[status].append((task.pk, Status.RUNNING))
            _record_many(moves[Status.PENDING], Status.PENDING, AUTONOMY, why, "task_rescued", now)
            _record_many(moves[Status.ESCALATED], Status.ESCALATED, AUTONOMY, why, "task_escalated", now)
            if moves[Status.PENDING]:
                _wake_workers()
            rescued += len(moves[Status.PENDING])
            escalated += len(moves[Status.ESCALATED])
    return rescued, escalated


def _live_capability_sets(now) -> list[set[str]]:
    return [set(c or []) for c in Worker.objects.live(now).values_list("capabilities", flat=True)]


def _why_unrunnable(required: list[str], live: list[set[str]]) -> tuple[str, str]:
    need = ", ".join(required) or "(none)"
    action = f"Start a worker with capabilities: {need} (manage.py engine_worker --capabilities {','.join(required)})."
    if not live:
        return "No worker is alive to run it.", action
    missing = sorted(set(required) - set().union(*live))
    if missing:
        return f"No live worker has {', '.join(missing)}.", action
    return f"No single live worker has all of {need}.", action


def tasks_unblock_capable(*, now=None) -> int:
    """Tasks blocked for want of a capable worker go back to pending once such a worker is alive."""
    now = now or timezone.now()
    live = _live_capability_sets(now)
    candidates = [
        pk
        for pk, required in Task.objects.filter(
            status=Status.BLOCKED, reason_code=NO_CAPABLE_WORKER
        ).values_list("id", "required_capabilities")
        if any(set(required or []) <= caps for caps in live)
    ]
    moved = 0
    for chunk in _chunks(candidates):
        with transaction.atomic():
            rows = _locked(chunk, Q(status=Status.BLOCKED, reason_code=NO_CAPABLE_WORKER))
            ids = [t.pk for t in rows]
            if not ids:
                continue
            Task.objects.filter(pk__in=ids).update(
                status=Status.PENDING, status_changed_at=now, updated_at=now, **_CLEAR_REASON
            )
            _record_many(
                [(pk, Status.BLOCKED) for pk in ids],
                Status.PENDING,
                AUTONOMY,
                "a capable worker is alive",
                "task_unblocked",
                now,
            )
            _wake_workers()
            moved += len(ids)
    return moved


def _tasks_block_unrunnable(*, now) -> int:
    live = _live_capability_sets(now)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for pk, required in Task.objects.filter(status=Status.PENDING).values_list("id", "required_capabilities"):
        required = sorted(required or [])
        if not any(set(required) <= caps for caps in live):
            groups[_why_unrunnable(required, live)].append(pk)
    moved = 0
    for (reason, action), ids in groups.items():
        for chunk in _chunks(ids):
            with transaction.atomic():
                locked = [t.pk for t in _locked(chunk, Q(status=Status.PENDING))]
                if not locked:
                    continue
                Task.objects.filter(pk__in=locked).update(
                    status=Status.BLOCKED,
                    status_changed_at=now,
                    updated_at=now,
                    reason_code=NO_CAPABLE_WORKER,
                    reason=reason,
                    unblock_action=action,
                )
                _record_many(
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
                changed = Task.objects.filter(pk=task.pk, status=from_status).update(
                    status=Status.WAITING_APPROVAL,
                    status_changed_at=now,
                    updated_at=now,
                    reason_code=code,
                    reason=reason[:2000],
                    unblock_action=action[:300],
                    **extra,
                )
                if changed:
                    task.status, task.reason = Status.WAITING_APPROVAL, reason
                    _record(task, from_status, AUTONOMY, reason, "task_waiting_approval", reason_code=code)
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


def _age_text(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def stuck_findings(*, now=None) -> dict[str, dict]:
    """What looks stuck right now: an old queue head, overdue running tasks, silent workers."""
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
            "message": f"The oldest pending task has waited {_age_text(now - oldest)}.",
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
                    f"Task #{task.pk} “{task.title}” has run {_age_text(now - task.started_at)}, "
                    f"over its {task.timeout_seconds} s timeout."
                ),
            }
    for worker in Worker.objects.silent(now):
        findings[f"worker_silent:{worker.pk}:{worker.incarnation}"] = {
            "kind": "worker_silent",
            "worker_id": worker.pk,
            "message": f"Worker {worker.name} has been silent for {_age_text(worker.heartbeat_age(now))}.",
        }
    return findings


def _stuck_detect(*, now, report: TickReport) -> None:
    # Workers silent for a day are taken as gone, so their finding does not stay up forever.
    forgotten = Worker.objects.silent(now).filter(last_heartbeat__lt=now - FORGET_SILENT_WORKERS_AFTER)
    forgotten.update(stopped_at=now)
    findings = stuck_findings(now=now)
    with transaction.atomic():
        EngineState.get()
        # The row lock makes concurrent ticks agree on what is new, so each finding is announced once.
        state = EngineState.objects.select_for_update().get(pk=1)
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
    report.rescued, report.escalated = _rescue(
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


# --- read models for the page, the API and the Overview ----------------------------------------------------


def status_counts() -> dict[str, int]:
    counts = dict(Task.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {s: counts.get(s, 0) for s in Status.values}


def engine_snapshot(*, now=None) -> dict:
    """Everything the Overview line, the page header and ``GET /status`` say about the engine."""
    now = now or timezone.now()
    state = EngineState.get()
    counts = status_counts()
    live = list(Worker.objects.live(now))
    blocked_reasons = list(
        Task.objects.filter(status=Status.BLOCKED)
        .values_list("reason")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("reason", "n")[:3]
    )
    return {
        "paused": state.paused,
        "paused_by": state.paused_by,
        "paused_at": state.paused_at,
        "pause_reason": state.reason,
        "counts": counts,
        "open": sum(counts[s] for s in OPEN_STATUSES),
        "workers_live": len(live),
        "workers_known": Worker.objects.filter(stopped_at__isnull=True).count(),
        "findings": _tick_silence(state.last_tick_at, now) + list((state.findings or {}).values()),
        "last_tick_at": state.last_tick_at,
        "blocked_reasons": blocked_reasons,
    }


TICK_SILENT_AFTER = timedelta(minutes=3)


def _tick_silence(last_tick, now) -> list[dict]:
    """Nothing rescues or unblocks tasks while the jobs process is down: a finding of its own, first."""
    if last_tick is None or now - last_tick <= TICK_SILENT_AFTER:
        return []
    minutes = int((now - last_tick).total_seconds() // 60)
    return [
        {
            "kind": "tick_silent",
            "message": f"Autonomy loop silent for {minutes} min: is the jobs process running?",
        }
    ]


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def engine_area_status() -> AreaStatus:
    """The Overview's Engine line: what it is doing, or exactly why it is idle."""
    snap = engine_snapshot()
    c = snap["counts"]
    findings = snap["findings"]
    detail = " · ".join(f["message"] for f in findings[:2])
    workers = snap["workers_live"]
    w = _n(workers, "worker")
    if snap["paused"]:
        why = f": {snap['pause_reason']}" if snap["pause_reason"] else ""
        text = f"Paused by operator {snap['paused_by']}{why}. {c['running']} running, {c['pending']} queued."
        return AreaStatus("warn", text, detail)
    if c["running"]:
        text = f"Running {_n(c['running'], 'task')} on {w}; {c['pending']} queued."
        if c["waiting_approval"]:
            text += f" {_n(c['waiting_approval'], 'task')} waiting for approval."
        return AreaStatus("warn" if findings else "busy", text, detail)
    if workers == 0 and (c["pending"] or c["blocked"]):
        waiting = c["pending"] + c["blocked"]
        return AreaStatus("error", f"No worker alive; {_n(waiting, 'task')} waiting to run.", detail)
    if c["blocked"] and not c["pending"]:
        reason = snap["blocked_reasons"][0][0] if snap["blocked_reasons"] else "no capable worker"
        return AreaStatus("warn", f"All {_n(c['blocked'], 'open task')} blocked: {reason}", detail)
    if c["waiting_approval"] and not c["pending"]:
        return AreaStatus(
            "warn", f"Idle: {_n(c['waiting_approval'], 'task')} waiting for your approval.", detail
        )
    if c["pending"]:
        return AreaStatus("busy", f"{_n(c['pending'], 'task')} queued for {w}.", detail)
    if workers == 0:
        return AreaStatus("idle", "No tasks, and no worker alive.", detail)
    return AreaStatus("warn" if findings else "ok", f"Idle: no tasks. {w} ready.", detail)


def engine_history(*, now=None, hours: int = 24) -> list[dict]:
    """Per hour over the last ``hours``: tasks finished done, and queue depth (open tasks) at its end."""
    now = now or timezone.now()
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    starts = [end - timedelta(hours=hours - i) for i in range(hours)]
    since = starts[0]
    done: dict[str, Any] = {}
    depth: dict[str, Any] = {}
    for i, start in enumerate(starts):
        stop = min(start + timedelta(hours=1), now)
        done[f"d{i}"] = Count(
            "id", filter=Q(status=Status.DONE, finished_at__gte=start, finished_at__lt=stop)
        )
        depth[f"q{i}"] = Count(
            "id",
            filter=Q(created_at__lte=stop) & (Q(finished_at__isnull=True) | Q(finished_at__gt=stop)),
        )
    relevant = Task.objects.filter(
        Q(finished_at__gte=since) | Q(finished_at__isnull=True, status__in=OPEN_STATUSES)
    )
    agg = relevant.aggregate(**done, **depth)
    return [
        {"start": start, "done": agg[f"d{i}"] or 0, "depth": agg[f"q{i}"] or 0}
        for i, start in enumerate(starts)
    ]
