"""Chat tools of the engine: list, create, approve and retry tasks, list workers, the engine's status.

They act as the chat session's owner through the same services an operator's buttons use, so the
same checks and history rows apply (``created_by`` / ``approved_by`` name that operator). Changing
tools are unsafe: the chat asks the operator before running them.
"""

from typing import Literal

from django.utils import timezone

from juggernaut.engine import services
from juggernaut.engine.models import Status, Task, Worker
from juggernaut.engine.sources import OPERATOR
from juggernaut.tools import tool, tool_actor, tool_source, tool_user

MAX_ITEMS = 25
TaskStatus = Literal[
    "pending", "running", "blocked", "waiting_approval", "done", "failed", "escalated", "cancelled", ""
]


def _task(task: Task) -> dict:
    return {
        "id": task.pk,
        "title": task.title,
        "kind": task.kind,
        "status": task.status,
        "priority": task.priority,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "reason": task.reason,
        "unblock_action": task.unblock_action,
        "last_error": task.last_error[:500],
        "source": task.source,
        "created_by": task.created_by,
        "created_at": task.created_at.isoformat(),
    }


@tool(safe=True)
def list_tasks(status: TaskStatus = "", kind: str = "", limit: int = 10) -> list[dict]:
    """The newest engine tasks, optionally only those of one status or kind.

    status: pending, running, blocked, waiting_approval, done, failed, escalated or cancelled (empty: all)
    kind: a task kind such as "logs.triage" (empty: all)
    limit: how many, 1 to 25
    """
    tool_user()
    tasks = Task.objects.order_by("-created_at", "-id")
    if status:
        tasks = tasks.filter(status=status)
    if kind:
        tasks = tasks.filter(kind=kind)
    return [_task(t) for t in tasks[: max(1, min(limit, MAX_ITEMS))]]


@tool(safe=False)
def create_task(title: str, kind: str, payload: dict | None = None, priority: int = 0) -> dict:
    """Queue a new engine task (its source: whoever runs the tool); kinds that need approval wait for an operator.

    title: what the task is for, 1 to 200 characters
    kind: the task kind, e.g. "echo" or "logs.triage"
    payload: the task's input, a JSON object
    priority: -1000 to 1000, higher runs first
    """
    task = services.task_create(
        title,
        kind=kind,
        payload=payload or {},
        priority=priority,
        source=tool_source() or OPERATOR,
        actor=tool_actor(),
    )
    return _task(task)


@tool(safe=False)
def approve_task(task_id: int) -> dict:
    """Approve an engine task that waits for approval, so it runs.

    task_id: the task's id
    """
    return _task(services.task_approve(task_id, actor=tool_actor()))


@tool(safe=False)
def retry_task(task_id: int) -> dict:
    """Queue a failed, escalated, cancelled or blocked engine task again, with fresh attempts.

    task_id: the task's id
    """
    return _task(services.task_retry(task_id, actor=tool_actor()))


@tool(safe=True)
def list_workers() -> list[dict]:
    """The engine's workers: name, whether they are alive, what they run, their last heartbeat."""
    tool_user()
    now = timezone.now()
    return [
        {
            "name": w.name,
            "live": w.is_live(now),
            "kinds": w.kinds,
            "capabilities": w.capabilities,
            "concurrency": w.concurrency,
            "last_heartbeat": w.last_heartbeat.isoformat(),
            "stopped": w.stopped_at is not None,
        }
        for w in Worker.objects.filter(stopped_at__isnull=True)[:MAX_ITEMS]
    ]


@tool(safe=True)
def engine_status() -> dict:
    """The engine at a glance: paused or not, task counts by status, live workers, and what needs a human."""
    tool_user()
    snap = services.engine_snapshot()
    return {
        "paused": snap["paused"],
        "pause_reason": snap["pause_reason"],
        "counts": snap["counts"],
        "open": snap["open"],
        "workers_live": snap["workers_live"],
        "needs_attention": snap["counts"].get(Status.ESCALATED, 0)
        + snap["counts"].get(Status.FAILED, 0)
        + snap["counts"].get(Status.WAITING_APPROVAL, 0),
        "findings": [{"severity": f["severity"], "message": f["message"]} for f in snap["findings"]],
    }
