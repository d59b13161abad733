"""The engine's JSON API, mounted at ``/api/engine``: workers, the claim protocol, operator actions.

Scopes: ``worker`` for the claim protocol, ``write`` for creating and steering tasks, ``read`` for
listings. A signed-in session has every scope.
"""

from django.http import HttpRequest
from ninja import Query, Router, Status

from juggernaut.auth import require_scope
from juggernaut.engine import schemas, services
from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import EngineState, Task, Worker
from juggernaut.engine.models import Status as TaskStatus
from juggernaut.schemas import DbId

router = Router(tags=["engine"])


def _actor(request: HttpRequest) -> str:
    return request.auth.actor  # type: ignore[attr-defined]


def _owner(request: HttpRequest) -> str:
    """Who the caller is, as a worker owner: its token, or the signed-in operator."""
    principal = request.auth  # type: ignore[attr-defined]
    return f"token:{principal.token.pk}" if principal.token else f"user:{principal.user.pk}"


def _own_worker(request: HttpRequest, worker_id: int) -> None:
    """Only the owner acts for a worker (its heartbeat, claims and reports): 403 for anyone else."""
    owner = Worker.objects.filter(pk=worker_id).values_list("owner", flat=True).first()
    if owner is None:
        raise EngineError("not_found", f"no worker {worker_id}", status=404)
    if owner != _owner(request):
        raise EngineError("not_owner", f"worker {worker_id} was registered by someone else", status=403)


def _task(task_id: DbId) -> Task:
    """One task for a read (operations that change a task return the one their service returned)."""
    task = Task.objects.select_related("lease_owner").filter(pk=task_id).first()
    if task is None:
        raise EngineError("not_found", f"no task {task_id}", status=404)
    return task


# --- workers and the claim protocol ----------------------------------------------------------------


@router.post("/workers", response={201: schemas.WorkerRegisteredOut})
def workers_register(request, payload: schemas.WorkerIn):
    """Register a worker by name; every call returns a fresh incarnation (the old one is fenced off).

    The name then belongs to the caller's token: anyone else gets 409 `name_taken`, unless an admin
    asks for a `takeover`."""
    principal = require_scope(request, "worker")
    if payload.takeover and not principal.is_admin:
        raise EngineError("forbidden", "only an admin may take over another owner's worker", status=403)
    worker = services.worker_register(
        payload.name,
        capabilities=payload.capabilities,
        concurrency=payload.concurrency,
        kinds=payload.kinds,
        owner=_owner(request),
        takeover=payload.takeover,
    )
    return Status(201, worker)


@router.get("/workers", response=list[schemas.WorkerOut])
def workers_list(request):
    require_scope(request, "read")
    return Worker.objects.all()


@router.post("/workers/{worker_id}/heartbeat", response=schemas.HeartbeatOut)
def workers_heartbeat(request, worker_id: DbId, payload: schemas.IncarnationIn):
    """Send at least every ENGINE_HEARTBEAT_SECONDS; `paused` tells the worker not to bother claiming."""
    require_scope(request, "worker")
    _own_worker(request, worker_id)
    worker = services.worker_heartbeat(worker_id, incarnation=payload.incarnation)
    return {"worker": worker, "paused": EngineState.load().paused}


@router.post("/workers/{worker_id}/stop", response=schemas.WorkerOut)
def workers_stop(request, worker_id: DbId, payload: schemas.StopIn | None = None):
    """Sign off: running tasks go back to the queue without losing an attempt. The owner sends its
    incarnation; an operator session or an admin token may stop any worker."""
    principal = require_scope(request, "worker")
    incarnation = payload.incarnation if payload else None
    if not principal.has_scope("admin"):
        _own_worker(request, worker_id)
        if incarnation is None:
            raise EngineError("bad_incarnation", "send the worker's incarnation", status=422)
    return services.worker_stop(worker_id, incarnation=incarnation)


@router.post("/claim", response=list[schemas.TaskOut])
def claim(request, payload: schemas.ClaimIn):
    """Lease up to `limit` tasks; keep each alive with its heartbeat and report complete or fail."""
    require_scope(request, "worker")
    _own_worker(request, payload.worker)
    return services.task_claim(payload.worker, incarnation=payload.incarnation, limit=payload.limit)


@router.post("/tasks/{task_id}/heartbeat", response=schemas.LeaseOut)
def tasks_heartbeat(request, task_id: DbId, payload: schemas.LeaseIn):
    require_scope(request, "worker")
    _own_worker(request, payload.worker)
    until = services.task_heartbeat(task_id, worker_id=payload.worker, incarnation=payload.incarnation)
    return {"id": task_id, "lease_expires_at": until}


@router.post("/tasks/{task_id}/complete", response=schemas.TaskOut)
def tasks_complete(request, task_id: DbId, payload: schemas.CompleteIn):
    """Refused with 409 `lease_lost` if the caller no longer holds the task (nothing changes)."""
    require_scope(request, "worker")
    _own_worker(request, payload.worker)
    return services.task_complete(
        task_id, worker_id=payload.worker, incarnation=payload.incarnation, result=payload.result
    )


@router.post("/tasks/{task_id}/fail", response=schemas.TaskOut)
def tasks_fail(request, task_id: DbId, payload: schemas.FailIn):
    """A failed attempt: retried with backoff, or escalated after max attempts (`permanent` fails now)."""
    require_scope(request, "worker")
    _own_worker(request, payload.worker)
    return services.task_fail(
        task_id,
        worker_id=payload.worker,
        incarnation=payload.incarnation,
        error=payload.error,
        permanent=payload.permanent,
    )


@router.post("/tasks/{task_id}/release", response=schemas.TaskOut)
def tasks_release(request, task_id: DbId, payload: schemas.LeaseIn):
    """Give a task back unfinished (shutting down): pending again, the attempt not counted."""
    require_scope(request, "worker")
    _own_worker(request, payload.worker)
    return services.task_release(task_id, worker_id=payload.worker, incarnation=payload.incarnation)


# --- tasks -------------------------------------------------------------------------------------------


@router.get("/tasks", response=schemas.TaskPageOut)
def tasks_list(request, filters: Query[schemas.TaskFilter]):
    """Newest first; `status` may be a comma-separated list."""
    require_scope(request, "read")
    qs = Task.objects.select_related("lease_owner").order_by("-created_at", "-id")
    if filters.status:
        wanted = [s.strip() for s in filters.status.split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(TaskStatus.values))
        if unknown:
            raise EngineError(
                "bad_status",
                f"unknown status {', '.join(unknown)}",
                status=422,
                details={"allowed": TaskStatus.values},
            )
        qs = qs.filter(status__in=wanted)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.source:
        qs = qs.filter(source=filters.source)
    return {"items": list(qs[filters.offset : filters.offset + filters.limit]), "count": qs.count()}


@router.post("/tasks", response={200: schemas.TaskOut, 201: schemas.TaskOut})
def tasks_create(request, payload: schemas.TaskIn):
    """201 with the new task, or 200 with the open task that already holds `dedupe_key`."""
    require_scope(request, "write")
    task = services.task_create(
        payload.title,
        kind=payload.kind,
        payload=payload.payload,
        priority=payload.priority,
        required_capabilities=payload.required_capabilities,
        source=payload.source,
        dedupe_key=payload.dedupe_key,
        max_attempts=payload.max_attempts,
        needs_approval=payload.needs_approval,
        depends_on=payload.depends_on,
        timeout_seconds=payload.timeout_seconds,
        origin=payload.origin,
        actor=_actor(request),
    )
    return Status(201 if task.was_created else 200, task)


@router.get("/tasks/{task_id}", response=schemas.TaskDetailOut)
def tasks_get(request, task_id: DbId):
    require_scope(request, "read")
    return _task(task_id)


@router.patch("/tasks/{task_id}", response=schemas.TaskOut)
def tasks_update(request, task_id: DbId, payload: schemas.TaskPatch):
    require_scope(request, "write")
    return services.task_prioritize(task_id, priority=payload.priority, actor=_actor(request))


@router.post("/tasks/{task_id}/approve", response=schemas.TaskOut)
def tasks_approve(request, task_id: DbId):
    require_scope(request, "write")
    return services.task_approve(task_id, actor=_actor(request))


@router.post("/tasks/{task_id}/retry", response=schemas.TaskOut)
def tasks_retry(request, task_id: DbId):
    require_scope(request, "write")
    return services.task_retry(task_id, actor=_actor(request))


@router.post("/tasks/{task_id}/cancel", response=schemas.TaskOut)
def tasks_cancel(request, task_id: DbId, payload: schemas.CancelIn | None = None):
    require_scope(request, "write")
    return services.task_cancel(task_id, actor=_actor(request), reason=payload.reason if payload else "")


@router.post("/tasks/{task_id}/acknowledge", response=schemas.TaskOut)
def tasks_acknowledge(request, task_id: DbId):
    """Seen: a failed or escalated task stays as it is but stops asking for attention."""
    require_scope(request, "write")
    return services.task_acknowledge(task_id, actor=_actor(request))


@router.post("/tasks/{task_id}/reassign", response=schemas.TaskOut)
def tasks_reassign(request, task_id: DbId, payload: schemas.ReassignIn | None = None):
    """Back to the queue; with `worker_name`, narrowed to what that worker can do."""
    require_scope(request, "write")
    return services.task_reassign(
        task_id, actor=_actor(request), worker_name=payload.worker_name if payload else None
    )


# --- the engine as a whole -------------------------------------------------------------------------


def _status() -> dict:
    snap = services.engine_snapshot()
    return {
        **{
            k: snap[k] for k in ("paused", "paused_by", "paused_at", "pause_reason", "counts", "workers_live")
        },
        "findings": snap["findings"],
        "last_tick_at": snap["last_tick_at"],
        "summary": services.engine_area_status(snap).text,
    }


@router.get("/status", response=schemas.EngineStatusOut)
def status(request):
    """Counts by status, live workers, the stop switch, and the stuck detector's findings."""
    require_scope(request, "read")
    return _status()


@router.post("/pause", response=schemas.EngineStatusOut)
def pause(request, payload: schemas.PauseIn | None = None):
    """Stop all claiming; running tasks finish. Idempotent."""
    require_scope(request, "write")
    services.engine_pause(actor=_actor(request), reason=payload.reason if payload else "")
    return _status()


@router.post("/resume", response=schemas.EngineStatusOut)
def resume(request):
    require_scope(request, "write")
    services.engine_resume(actor=_actor(request))
    return _status()
