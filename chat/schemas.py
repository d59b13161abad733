"""In/Out schemas of the chat JSON API; operations return model objects and these schemas read them."""

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from ninja import Field, Schema

from chat.models import ChatRun, ChatSession
from juggernaut.events import last_seqs

Mode = Field(
    ..., min_length=1, max_length=40, pattern=r"^[-a-zA-Z0-9_]+$", description="a routing policy's mode"
)


class LimitsIn(Schema):
    """Overrides of the run limits; null keeps the mode's default."""

    max_steps: int | None = Field(None, ge=1, le=10_000, description="model calls + tool calls per run")
    max_iterations: int | None = Field(None, ge=1, le=1_000, description="model calls per run")
    max_wall_seconds: int | None = Field(None, ge=1, le=86_400)
    max_cost_usd: Decimal | None = Field(None, ge=0, le=10_000, max_digits=14, decimal_places=6)
    max_retries: int | None = Field(
        None,
        ge=0,
        le=100,
        description="failures of one failure fingerprint before the call is blocked, minus one",
    )


class SessionIn(Schema):
    mode: str = Mode
    title: str = Field("", max_length=200)
    limits: LimitsIn | None = None


class ModeIn(Schema):
    mode: str = Mode


class MessageIn(Schema):
    content: str = Field(..., min_length=1, max_length=100_000)


class ApproveIn(Schema):
    tool_call_id: str = Field(..., min_length=1, max_length=100)
    approve: bool


class SessionOut(Schema):
    id: int
    title: str
    mode: str
    status: str
    cost_usd: float = Field(description="USD spent by all of the session's runs")
    steps_used: int
    last_stop_reason: str
    last_stop_detail: str
    last_stop_action: str
    guardrails: dict
    active_run_id: int | None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_active_run_id(obj: ChatSession) -> int | None:
        return obj.runs.active().values_list("pk", flat=True).first()


class MessageOut(Schema):
    id: int
    role: str
    content: str
    tool_calls: list[dict]
    tool_call_id: str
    run_id: int | None
    created_at: datetime


class SessionDetailOut(SessionOut):
    messages: list[MessageOut]
    runs: list[int] = Field(description="the session's run ids, newest first")

    @staticmethod
    def resolve_messages(obj: ChatSession):
        return obj.messages.order_by("id")

    @staticmethod
    def resolve_runs(obj: ChatSession) -> list[int]:
        return list(obj.runs.order_by("-id").values_list("pk", flat=True))


class RunStartedOut(Schema):
    run_id: int

    @staticmethod
    def resolve_run_id(obj: ChatRun) -> int:
        return obj.pk


class ToolExecutionOut(Schema):
    id: int
    tool_call_id: str
    tool: str
    arguments: dict
    safe: bool
    status: str
    result: Any = None
    error: str
    error_type: str
    iteration: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    call_fingerprint: str
    failure_fingerprint: str
    decided_by: str
    decided_at: datetime | None


class CountersOut(Schema):
    iterations: int = Field(description="model calls")
    tool_calls: int
    tool_errors: int
    model_retries: int
    guardrail_steers: int
    guardrail_blocks: int


class RunOut(Schema):
    id: int
    session_id: int
    status: str
    phase: str
    mode: str
    model: str
    resumed_from_id: int | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    heartbeat_at: datetime | None
    cancel_requested_at: datetime | None
    stop_reason: str
    stop_detail: str
    stop_action: str
    counters: CountersOut
    guardrails: dict
    budget: dict = Field(description="limits and usage: steps, iterations, wall_seconds, cost_usd, retries")
    tool_executions: list[ToolExecutionOut]
    topic: str = Field(description="the run's event topic (replay it after last_seq to follow it live)")
    last_seq: int

    @staticmethod
    def resolve_counters(obj: ChatRun) -> dict:
        return {f: getattr(obj, f) for f in CountersOut.model_fields}

    @staticmethod
    def resolve_budget(obj: ChatRun) -> dict:
        return obj.budget.as_dict()

    @staticmethod
    def resolve_tool_executions(obj: ChatRun):
        return obj.tool_executions.order_by("id")

    @staticmethod
    def resolve_last_seq(obj: ChatRun) -> int:
        return last_seqs([obj.topic]).get(obj.topic, 0)


# --- the frontend protocols' requests (chat/protocols) ------------------------------------------


# Field names are the protocols' own (camelCase), so their clients' requests validate as they are.
class ResumeEntryIn(Schema):
    """An answer to an interrupt: `resolved` with `{"approved": bool}`, or `cancelled` (a denial)."""

    interruptId: str = Field(..., min_length=1, max_length=100)
    status: Literal["resolved", "cancelled"]
    payload: Any = None


class RunAgentIn(Schema):
    """AG-UI's `RunAgentInput`. `threadId` is the chat session's id; the last message (a user message)
    is what is sent, unless `resume` answers the approvals the session's run waits for. `tools`,
    `context`, `state` and `forwardedProps` are accepted and not used: the HQ's tools and state are its own."""

    threadId: str = Field(..., min_length=1, max_length=100)
    runId: str = Field(..., min_length=1, max_length=200)
    messages: list[dict] = Field(default_factory=list, max_length=10_000)
    tools: list[dict] = Field(default_factory=list, max_length=1_000)
    context: list[dict] = Field(default_factory=list, max_length=1_000)
    state: Any = None
    forwardedProps: Any = None
    resume: list[ResumeEntryIn] | None = Field(None, max_length=100)


class UIChatIn(Schema):
    """What the AI SDK's `DefaultChatTransport` posts: `id` is the chat session's id; the last message
    is a user message to send, or the assistant message whose tool parts answer the approvals."""

    id: str = Field(..., min_length=1, max_length=100)
    messages: list[dict] = Field(..., min_length=1, max_length=10_000)
    trigger: str | None = Field(None, max_length=40)
    messageId: str | None = Field(None, max_length=200)
