"""Queueing tasks and what operators do to them: approve, retry, cancel, reassign, prioritise, pause, resume.

Each action locks the task row, checks that the task is in a status the action allows, and records
the change (history row + live event) in the same transaction.
"""

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from juggernaut.engine import handlers
from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import (
    ACTION_STATUSES,
    CLOSED_STATUSES,
    LEASE_CLEARED,
    REASON_CLEARED,
    EngineState,
    Status,
    Task,
    Worker,
)
from juggernaut.engine.services.common import (
    CANCELLED,
    KIND_RE,
    NEEDS_APPROVAL,
    TOPIC,
    clean_capabilities,
    not_found,
    record,
    wake_workers,
)
from juggernaut.engine.sources import OPERATOR, sources
from juggernaut.events import publish

# --- queueing ------------------------------------------------------------------------------------------


def task_create(
    title: str,
    *,
    kind: str,
    payload: dict | None = None,
    priority: int = 0,
    required_capabilities: list[str] | None = None,
    source: str = OPERATOR,
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
    if source not in (known := sources()):
        raise EngineError("bad_source", f"source must be one of {', '.join(known)}", status=422)
    if dedupe_key is not None and (not dedupe_key.strip() or len(dedupe_key) > 200):
        raise EngineError("bad_dedupe_key", "dedupe_key must be 1 to 200 characters", status=422)
    if max_attempts is not None and not 1 <= max_attempts <= 100:
        raise EngineError("bad_max_attempts", "max_attempts must be between 1 and 100", status=422)
    if timeout_seconds is not None and not 1 <= timeout_seconds <= 7 * 86400:
        raise EngineError("bad_timeout", "timeout_seconds must be between 1 and 604800", status=422)
    handler = handlers.lookup(kind)
    if required_capabilities is None:
        required = handlers.default_capabilities(kind)
    else:
        required = clean_capabilities(required_capabilities, field_name="required_capabilities")
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
            record(task, "", actor, reason or "created", "task_created", source=task.source)
            if task.status == Status.PENDING:
                wake_workers()
    except IntegrityError:
        existing = Task.objects.open().filter(dedupe_key=dedupe_key).first() if dedupe_key else None
        if existing is None:
            raise
        existing.was_created = False
        return existing
    task.was_created = True
    return task


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
        raise not_found("task", task_id)
    if task.status not in allowed:
        raise EngineError(
            "illegal_transition",
            f"task #{task_id} is {_words(task.status)}; only {', '.join(map(_words, allowed))} tasks "
            f"can be {verb}",
            status=409,
            details={"status": task.status, "allowed": allowed},
        )
    from_status = task.status
    task.apply(now=now, **fields)
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
    record(task, from_status, actor, reason, event_type)
    if task.status == Status.PENDING:
        wake_workers()
    return task


def _words(status: str) -> str:
    return status.replace("_", " ")


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
            **REASON_CLEARED,
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
            allowed=ACTION_STATUSES["approve"],
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
            allowed=ACTION_STATUSES["retry"],
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
                "acknowledged_by": "",
                "acknowledged_at": None,  # if it fails again, it asks for attention again
                **REASON_CLEARED,
                **LEASE_CLEARED,
            },
            reason=f"retried by {actor}",
            now=now,
        )


def task_cancel(task_id: int, *, actor: str, reason: str = "", now=None) -> Task:
    """Cancel an open, failed or escalated task; a worker still running it finds its lease gone."""
    now = now or timezone.now()
    text = f"cancelled by {actor}" + (f": {reason}" if reason else "")
    with transaction.atomic():
        return _transition(
            task_id,
            allowed=ACTION_STATUSES["cancel"],
            verb="cancelled",
            actor=actor,
            event_type="task_cancelled",
            fields={
                "status": Status.CANCELLED,
                "finished_at": now,
                "next_attempt_at": None,
                **LEASE_CLEARED,
                "reason_code": CANCELLED,
                "reason": text[:2000],
                "unblock_action": "Retry it to queue it again.",
            },
            reason=text,
            now=now,
        )


def task_reassign(task_id: int, *, actor: str, worker_name: str | None = None, now=None) -> Task:
    """Put a task back in the queue, taking it from its worker if running (no attempt is charged).

    With ``worker_name``, only a live worker that can run the task as it is will do: its required
    capabilities are never narrowed to fit a worker. Any capable worker may then claim it.
    """
    now = now or timezone.now()
    with transaction.atomic():
        current = Task.objects.select_for_update().filter(pk=task_id).first()
        if current is None:
            raise not_found("task", task_id)
        fields: dict[str, Any] = {
            "status": Status.PENDING,
            "next_attempt_at": None,
            **LEASE_CLEARED,
            **REASON_CLEARED,
        }
        if current.status == Status.RUNNING:
            fields["attempts"] = max(current.attempts - 1, 0)
        text = f"reassigned by {actor}"
        if worker_name:
            target = _capable_worker(current, worker_name, now=now)
            text += f" for worker {target.name}"
        return _transition(
            task_id,
            allowed=ACTION_STATUSES["reassign"],
            verb="reassigned",
            actor=actor,
            event_type="task_reassigned",
            fields=fields,
            reason=text,
            now=now,
        )


def _capable_worker(task: Task, worker_name: str, *, now) -> Worker:
    """The named worker, if it is alive and would claim ``task`` (``Worker.can_run``: its kind and
    capabilities); otherwise a refusal that says why."""
    worker = Worker.objects.filter(name=worker_name).first()
    if worker is None:
        raise EngineError(
            "unknown_worker",
            f"there is no worker named “{worker_name[:100]}”; pick a live worker",
            status=422,
        )
    if not worker.is_live(now):
        raise EngineError(
            "worker_not_live", f"worker {worker.name} is not alive; pick a live worker", status=409
        )
    if worker.can_run(task.required_capabilities, task.kind):
        return worker
    if not worker.runs_kind(task.kind):
        raise EngineError(
            "worker_incapable",
            f"worker {worker.name} does not run tasks of kind {task.kind}; pick a worker that does",
            status=409,
            details={"kind": task.kind},
        )
    missing = sorted(set(task.required_capabilities or []) - set(worker.capabilities or []))
    raise EngineError(
        "worker_incapable",
        f"worker {worker.name} cannot run task #{task.pk}: it lacks {', '.join(missing)}",
        status=409,
        details={"missing": missing},
    )


def task_acknowledge(task_id: int, *, actor: str, now=None) -> Task:
    """Mark a failed or escalated task as seen: it stays as it is but stops asking for attention."""
    now = now or timezone.now()
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=task_id).first()
        if task is None:
            raise not_found("task", task_id)
        allowed = ACTION_STATUSES["acknowledge"]
        if task.status not in allowed:
            raise EngineError(
                "illegal_transition",
                f"task #{task_id} is {_words(task.status)}; only failed or escalated tasks can be acknowledged",
                status=409,
                details={"status": task.status, "allowed": list(allowed)},
            )
        if task.acknowledged_at is None:
            task.acknowledged_by, task.acknowledged_at = actor[:150], now
            task.save(update_fields=["acknowledged_by", "acknowledged_at", "updated_at"])
            record(task, task.status, actor, f"acknowledged by {actor}", "task_acknowledged")
    return task


def task_prioritize(task_id: int, *, priority: int, actor: str, now=None) -> Task:
    """Change an open task's priority (recorded in its history like a status change)."""
    if not isinstance(priority, int) or not -1000 <= priority <= 1000:
        raise EngineError("bad_priority", "priority must be a whole number from -1000 to 1000", status=422)
    now = now or timezone.now()
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=task_id).first()
        if task is None:
            raise not_found("task", task_id)
        if task.status not in ACTION_STATUSES["priority"]:
            raise EngineError(
                "illegal_transition",
                f"task #{task_id} is {_words(task.status)}; only open tasks can be re-prioritised",
                status=409,
                details={"status": task.status},
            )
        old = task.priority
        task.priority = priority
        task.save(update_fields=["priority", "updated_at"])
        record(task, task.status, actor, f"priority {old} → {priority} by {actor}", "task_updated")
    return task


# --- the stop switch ----------------------------------------------------------------------------------


def engine_pause(*, actor: str, reason: str = "", now=None) -> EngineState:
    """Stop all claiming (running tasks finish). Pausing a paused engine changes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        EngineState.load()
        state = EngineState.objects.select_for_update().get(pk=EngineState.PK)
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
        EngineState.load()
        state = EngineState.objects.select_for_update().get(pk=EngineState.PK)
        if state.paused:
            state.paused, state.paused_by, state.paused_at, state.reason = False, "", None, ""
            state.save()
            publish(TOPIC, "engine_resumed", {"by": actor, "message": f"resumed by {actor}"})
            wake_workers()
    return state
