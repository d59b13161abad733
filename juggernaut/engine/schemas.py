"""In/Out schemas of the engine's JSON API.

Out schemas read the models (``Worker``, ``Task``) directly: operations return what the service
returned, and a ``resolve_<field>`` says how a field that is not a plain attribute is computed.
"""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from ninja import Field, Schema

from juggernaut.engine.models import Status, Task, Worker
from juggernaut.engine.services.common import CAPABILITY_RE, KIND_RE, REASON_CODES
from juggernaut.inputs import BIGINT_MAX
from juggernaut.schemas import Choice, DbId

# The patterns the services enforce, declared so the OpenAPI schema (and its clients) know them.
Kind = Annotated[str, Field(pattern=KIND_RE.pattern, max_length=100)]
Capability = Annotated[str, Field(pattern=CAPABILITY_RE.pattern, max_length=100)]


KindOrAny = Annotated[str, Field(pattern=r"^(\*|" + KIND_RE.pattern.strip("^$") + ")$", max_length=100)]


class WorkerIn(Schema):
    name: str = Field(..., min_length=1, max_length=100)
    capabilities: list[Capability] = Field(default_factory=list, max_length=50)
    concurrency: int = Field(1, ge=1, le=256)
    kinds: list[KindOrAny] = Field(
        default_factory=lambda: ["*"], max_length=200, description='task kinds it runs; ["*"] for any'
    )
    takeover: bool = Field(False, description="admin only: take over a name another owner registered")


class WorkerOut(Schema):
    id: int
    name: str
    owner: str
    kinds: list[str]
    capabilities: list[str]
    concurrency: int
    last_heartbeat: datetime
    started_at: datetime
    stopped_at: datetime | None
    live: bool

    @staticmethod
    def resolve_live(worker: Worker) -> bool:
        return worker.is_live()


class WorkerRegisteredOut(WorkerOut):
    """Only the registering caller ever sees the incarnation: every report it makes carries it."""

    incarnation: UUID


class IncarnationIn(Schema):
    incarnation: UUID


class StopIn(Schema):
    incarnation: UUID | None = Field(None, description="the owner's; an operator or admin may leave it out")


class HeartbeatOut(Schema):
    worker: WorkerOut
    paused: bool


class ClaimIn(Schema):
    worker: DbId
    incarnation: UUID
    limit: int = Field(1, ge=1, le=100)


class LeaseIn(Schema):
    worker: DbId
    incarnation: UUID


class CompleteIn(LeaseIn):
    result: Any = None


class FailIn(LeaseIn):
    error: str = Field(..., min_length=1, max_length=10000)
    permanent: bool = False


class LeaseOut(Schema):
    id: int
    lease_expires_at: datetime


class TaskIn(Schema):
    title: str = Field(..., min_length=1, max_length=200)
    kind: Kind
    payload: dict = Field(default_factory=dict)
    priority: int = Field(0, ge=-1000, le=1000)
    required_capabilities: list[Capability] | None = Field(None, max_length=50)
    source: str = "operator"
    dedupe_key: str | None = Field(None, max_length=200)
    max_attempts: int | None = Field(None, ge=1, le=100)
    needs_approval: bool | None = None
    depends_on: DbId | None = None
    timeout_seconds: int | None = Field(None, ge=1, le=604800)
    origin: dict = Field(default_factory=dict)


class TaskFilter(Schema):
    status: str | None = Field(None, description="one status or a comma-separated list", max_length=200)
    kind: str | None = Field(None, max_length=100)
    source: str | None = Field(None, max_length=20)
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=BIGINT_MAX)


class TaskPatch(Schema):
    priority: int = Field(..., ge=-1000, le=1000)


class ReassignIn(Schema):
    worker_name: str | None = Field(None, max_length=100)


class CancelIn(Schema):
    reason: str = Field("", max_length=2000)


class TaskOut(Schema):
    id: int
    title: str
    kind: str
    payload: dict
    priority: int
    status: Choice(Status.values)  # type: ignore[valid-type]
    required_capabilities: list[str]
    source: str
    dedupe_key: str | None
    reason_code: Choice(["", *REASON_CODES], "why it waits or stopped; empty when nothing holds it")  # type: ignore[valid-type]
    reason: str
    unblock_action: str
    needs_approval: bool
    approved_by: str
    acknowledged_by: str
    acknowledged_at: datetime | None
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    timeout_seconds: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    depends_on: int | None
    last_error: str
    result: Any = None
    origin: dict
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def resolve_lease_owner(task: Task) -> str | None:
        """The worker's name (no query when nobody holds the task)."""
        return task.lease_owner.name if task.lease_owner_id and task.lease_owner else None

    @staticmethod
    def resolve_depends_on(task: Task) -> int | None:
        return task.depends_on_id


class TaskPageOut(Schema):
    items: list[TaskOut]
    count: int


class TaskEventOut(Schema):
    from_status: Choice(["", *Status.values], "empty for the task's creation")  # type: ignore[valid-type]
    to_status: Choice(Status.values)  # type: ignore[valid-type]
    actor: str
    reason: str
    at: datetime


class TaskDetailOut(TaskOut):
    events: list[TaskEventOut]  # the task's history, oldest first (``TaskEvent`` ordering)


class PauseIn(Schema):
    reason: str = Field("", max_length=2000)


class EngineStatusOut(Schema):
    paused: bool
    paused_by: str
    paused_at: datetime | None
    pause_reason: str
    counts: dict[str, int]
    workers_live: int
    findings: list[dict]
    last_tick_at: datetime | None
    summary: str
