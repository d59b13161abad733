"""What every engine workflow shares: names, input checks, the history-and-event record, waking workers.

Every status change writes a ``TaskEvent`` and publishes an event on the ``engine`` topic in the same
transaction (``record`` / ``record_many``); a change that makes a task claimable wakes the workers.
"""

import random
import re
import threading
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import ANY_KIND, LEASE_CLEARED, Status, Task, TaskEvent
from juggernaut.events import publish
from juggernaut.timefmt import duration_text

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
CANCELLED = "cancelled"
REASON_CODES = (
    NO_CAPABLE_WORKER,
    NEEDS_APPROVAL,
    BLOCKED_TOO_LONG,
    DEPENDENCY_FAILED,
    MAX_ATTEMPTS,
    PERMANENT_ERROR,
    RETRY_BACKOFF,
    CANCELLED,
)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.ENGINE_LEASE_SECONDS)


def as_incarnation(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError as exc:
        raise EngineError("bad_incarnation", "incarnation must be a UUID", status=422) from exc


def not_found(what: str, ident: Any) -> EngineError:
    return EngineError("not_found", f"no {what} {ident}", status=404)


def clean_capabilities(value: Iterable[str] | None, *, field_name: str = "capabilities") -> list[str]:
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


def clean_kinds(value: Iterable[str] | None) -> list[str]:
    """The task kinds a worker runs: kind names, or ``["*"]`` (the default) for any kind."""
    if value is None:
        return [ANY_KIND]
    if isinstance(value, str) or not all(isinstance(k, str) for k in value):
        raise EngineError("bad_kinds", "kinds must be a list of strings", status=422)
    kinds = sorted({k.strip() for k in value if k.strip()})
    bad = [k for k in kinds if k != ANY_KIND and not KIND_RE.match(k)]
    if bad or len(kinds) > 200:
        raise EngineError(
            "bad_kinds",
            f'kinds: at most 200 task kinds, or "*" for any (bad: {", ".join(bad)[:200]})',
            status=422,
        )
    return [ANY_KIND] if ANY_KIND in kinds else kinds


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


def record(task: Task, from_status: str, actor: str, reason: str, event_type: str, **extra: Any) -> None:
    """History row + live event for one task's change (inside the caller's transaction)."""
    TaskEvent.objects.create(
        task=task, from_status=from_status, to_status=task.status, actor=actor, reason=reason[:2000]
    )
    publish(TOPIC, event_type, _task_data(task, **({"from": from_status} if from_status else {}), **extra))


def record_many(
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
            "message": f"{plural(len(ids), 'task')} {to_status.replace('_', ' ')}: {reason[:200]}",
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


def wake_workers() -> None:
    """Tell workers to claim now: NOTIFY on Postgres (delivered at commit), in-process otherwise."""
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [WAKE_CHANNEL])
    transaction.on_commit(local_wake.notify)


def backoff_delay(attempts: int) -> timedelta:
    """``ENGINE_BACKOFF_BASE_SECONDS * 2**(attempts-1)``, capped at an hour, plus up to 25% jitter."""
    base = min(settings.ENGINE_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return timedelta(seconds=base * random.uniform(1.0, 1.25))  # noqa: S311 - retry jitter, not a secret


def retry_or_escalate(task: Task, *, now, error: str) -> tuple[str, dict]:
    """The fields for a task that lost its attempt: back to the queue with backoff, or escalated."""
    fields: dict[str, Any] = {**LEASE_CLEARED, "last_error": error[:10000]}
    if task.attempts >= task.max_attempts:
        fields.update(
            status=Status.ESCALATED,
            finished_at=now,
            next_attempt_at=None,
            reason_code=MAX_ATTEMPTS,
            reason=f"Gave up after {task.attempts} of {task.max_attempts} attempts. Last error: {error[:300]}",
            unblock_action=(
                "Fix the cause, then retry it (attempts start again); or acknowledge it (seen, left as it is) "
                "or cancel it."
            ),
        )
        return Status.ESCALATED, fields
    delay = backoff_delay(task.attempts)
    fields.update(
        status=Status.PENDING,
        next_attempt_at=now + delay,
        reason_code=RETRY_BACKOFF,
        reason=(
            f"Attempt {task.attempts} of {task.max_attempts} failed ({error[:200]}); "
            f"next attempt in {duration_text(delay)}."
        ),
        unblock_action="",
    )
    return Status.PENDING, fields


def worker_command(name: str, capabilities: Iterable[str]) -> str:
    """The command that starts a built-in worker (it runs every kind the handler registry has)."""
    caps = ",".join(sorted(capabilities))
    return f"manage.py engine_worker --name {name}" + (f" --capabilities {caps}" if caps else "")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
