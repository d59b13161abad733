"""The claim protocol: workers register and heartbeat; they claim, extend, complete, fail or release tasks.

Everything a worker reports is fenced by task id + worker incarnation + status, so a late answer from a
worker that lost its lease changes nothing. On Postgres the claim is one ``FOR UPDATE SKIP LOCKED``
statement; on SQLite a compare-and-set update per candidate.
"""

import json
import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import (
    BUILTIN_OWNER,
    LEASE_CLEARED,
    EngineState,
    Status,
    Task,
    Worker,
    claimed_fields,
    done_fields,
    released_fields,
    worker_actor,
)
from juggernaut.engine.services.autonomy import tasks_rescue, tasks_unblock_capable
from juggernaut.engine.services.common import (
    PERMANENT_ERROR,
    TOPIC,
    as_incarnation,
    clean_capabilities,
    clean_kinds,
    is_postgres,
    lease_duration,
    not_found,
    plural,
    record,
    record_many,
    retry_or_escalate,
    wake_workers,
)
from juggernaut.events import publish

# --- workers -----------------------------------------------------------------------------------------


def worker_register(
    name: str,
    *,
    capabilities: list[str] | None = None,
    concurrency: int = 1,
    kinds: list[str] | None = None,
    owner: str = BUILTIN_OWNER,
    takeover: bool = False,
    restarted_after: int | None = None,
    now=None,
) -> Worker:
    """Register (or re-register) a worker by name with a fresh incarnation, for ``owner``.

    A name belongs to whoever registered it first: anyone else is refused (409 ``name_taken``) unless
    ``takeover`` is asked for (the API allows that to admins only). A re-registration means the
    previous process is gone: its running tasks are rescued at once instead of waiting for their
    leases to expire. Tasks blocked for want of these capabilities or kinds go back to the queue.
    ``kinds`` are the task kinds it runs (``["*"]``, the default, for any). ``restarted_after``: the
    seconds of silence after which its supervisor restarts it (None: nothing does).
    """
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise EngineError("bad_name", "a worker needs a name of 1 to 100 characters", status=422)
    if not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
        raise EngineError("bad_concurrency", "concurrency must be between 1 and 256", status=422)
    caps = clean_capabilities(capabilities)
    kinds = clean_kinds(kinds)
    now = now or timezone.now()
    fresh = {
        "owner": owner,
        "kinds": kinds,
        "capabilities": caps,
        "concurrency": concurrency,
        "incarnation": uuid.uuid4(),
        "last_heartbeat": now,
        "started_at": now,
        "stopped_at": None,
        "restarted_after": restarted_after,
    }
    with transaction.atomic():
        worker = Worker.objects.select_for_update().filter(name=name).first()
        previous = worker.incarnation if worker else None
        if worker is None:
            try:
                with transaction.atomic():
                    worker = Worker.objects.create(name=name, **fresh)
            except IntegrityError:
                # Registered a moment ago by another process: treat it like a restart (if ours).
                worker = Worker.objects.select_for_update().get(name=name)
                previous = worker.incarnation
        if previous is not None and worker.owner != owner and not takeover:
            raise EngineError(
                "name_taken",
                f"the worker name {name} belongs to another owner; register under another name",
                status=409,
            )
        if previous is not None:
            for key, value in fresh.items():
                setattr(worker, key, value)
            worker.save()
            tasks_rescue(
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
            {"id": worker.pk, "name": name, "capabilities": caps, "kinds": kinds, "concurrency": concurrency},
        )
    tasks_unblock_capable(now=now)
    return worker


def _worker_checked(worker: Worker | int, incarnation: uuid.UUID | str) -> Worker:
    worker_id = worker.pk if isinstance(worker, Worker) else worker
    found = Worker.objects.filter(pk=worker_id).first()
    if found is None:
        raise not_found("worker", worker_id)
    if found.incarnation != as_incarnation(incarnation):
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


def worker_stop(worker: Worker | int, *, incarnation: uuid.UUID | str | None, now=None) -> Worker:
    """A clean shutdown: the worker leaves, and what it still holds goes back without losing an attempt.

    Without ``incarnation`` (an operator stopping someone else's worker) it stops whichever
    incarnation is current.
    """
    if incarnation is None:
        current = Worker.objects.filter(pk=worker.pk if isinstance(worker, Worker) else worker).first()
        if current is None:
            raise not_found("worker", worker)
        incarnation = current.incarnation
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


# --- claims ---------------------------------------------------------------------------------------------


CLAIM_SQL = """
WITH me AS (
    UPDATE engine_workers SET last_heartbeat = %(now)s
    WHERE id = %(worker)s AND incarnation = %(incarnation)s AND stopped_at IS NULL
    RETURNING capabilities, kinds
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
      AND ((SELECT kinds FROM me) @> '["*"]'::jsonb OR (SELECT kinds FROM me) @> jsonb_build_array(c.kind))
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
    incarnation = as_incarnation(incarnation)
    now = now or timezone.now()
    until = now + lease_duration()
    with transaction.atomic():
        if is_postgres():
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
        record_many(
            [(t.pk, Status.PENDING) for t in tasks],
            Status.RUNNING,
            worker_actor(name),
            "claimed",
            "task_claimed",
            now,
            worker=name,
            message=f"{name} claimed {plural(len(tasks), 'task')}",
        )
    return tasks


def _claim_cas(worker: Worker, *, now, until, limit: int) -> list[int]:
    if EngineState.objects.filter(pk=EngineState.PK, paused=True).exists():
        return []
    claimed: list[int] = []
    skipped: list[int] = []
    batch = max(50, limit * 4)
    while len(claimed) < limit:
        rows = list(
            Task.objects.claimable(now)
            .exclude(pk__in=skipped)
            .claim_order()
            .values_list("id", "required_capabilities", "kind")[:batch]
        )
        if not rows:
            break
        for pk, required, kind in rows:
            if not worker.can_run(required, kind):
                skipped.append(pk)
                continue
            changed = Task.objects.filter(pk=pk, status=Status.PENDING).move(
                now=now, **claimed_fields(worker, now=now, until=until)
            )
            if changed == 1:
                claimed.append(pk)
            else:
                skipped.append(pk)
            if len(claimed) >= limit:
                break
    return claimed


# --- fenced reports from the worker holding the lease ------------------------------------------------


def _fenced(task_id: int, worker_id: int, incarnation: uuid.UUID | str):
    return Task.objects.filter(
        pk=task_id,
        lease_owner_id=worker_id,
        lease_incarnation=as_incarnation(incarnation),
        status=Status.RUNNING,
    )


def _lease_lost(task_id: int) -> EngineError:
    task = Task.objects.filter(pk=task_id).only("status").first()
    if task is None:
        return not_found("task", task_id)
    return EngineError(
        "lease_lost",
        f"task #{task_id} is not leased to this worker incarnation (it is {task.status}); nothing was changed",
        status=409,
        details={"status": task.status},
    )


def task_heartbeat(task_id: int, *, worker_id: int, incarnation: uuid.UUID | str, now=None):
    """Extend the lease of a task the caller still holds; returns the new expiry."""
    now = now or timezone.now()
    until = now + lease_duration()
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
    incarnation = as_incarnation(incarnation)
    with transaction.atomic():
        if is_postgres():
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
            changed = _fenced(task_id, worker_id, incarnation).move(
                now=now, **done_fields(result=result, now=now)
            )
            if changed != 1:
                raise _lease_lost(task_id)
            task = Task.objects.select_related("lease_owner").get(pk=task_id)
            who = task.lease_owner.name if task.lease_owner else str(worker_id)
            wake = Task.objects.filter(depends_on_id=task_id, status=Status.PENDING).exists()
        record(task, Status.RUNNING, worker_actor(who), "completed", "task_done", worker=who)
        if wake:
            wake_workers()
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
                **LEASE_CLEARED,
                "finished_at": now,
                "last_error": error,
                "reason_code": PERMANENT_ERROR,
                "reason": f"Failed permanently: {error[:300]}",
                "unblock_action": "Fix the cause, then retry it; or acknowledge it (seen, left as it is) or cancel it.",
            }
        else:
            status, fields = retry_or_escalate(task, now=now, error=error)
        _fenced(task_id, worker_id, incarnation).move(now=now, **fields)
        task.refresh_from_db()
        event = "task_escalated" if status == Status.ESCALATED else "task_failed"
        worker = Worker.objects.filter(pk=worker_id).values_list("name", flat=True).first()
        record(
            task,
            Status.RUNNING,
            worker_actor(worker),
            task.reason,
            event,
            error=error[:300],
            retry_at=task.next_attempt_at.isoformat() if task.next_attempt_at else None,
        )
    return task


def _release(task_id: int, worker: Worker, incarnation: uuid.UUID, *, reason: str, now) -> Task | None:
    """Back to the queue without using up an attempt (the worker gave it back, it did not fail).

    Returns the released task, or None when the caller no longer held it."""
    changed = _fenced(task_id, worker.pk, incarnation).move(now=now, **released_fields())
    if changed != 1:
        return None
    task = Task.objects.get(pk=task_id)
    record(task, Status.RUNNING, worker_actor(worker.name), reason, "task_released")
    wake_workers()
    return task


def task_release(
    task_id: int, *, worker_id: int, incarnation: uuid.UUID | str, reason: str = "released", now=None
) -> Task:
    """A worker gives a task back (shutting down): pending again, the attempt not counted."""
    worker = Worker.objects.filter(pk=worker_id).first()
    if worker is None:
        raise not_found("worker", worker_id)
    with transaction.atomic():
        task = _release(
            task_id, worker, as_incarnation(incarnation), reason=reason, now=now or timezone.now()
        )
        if task is None:
            raise _lease_lost(task_id)
    return task
