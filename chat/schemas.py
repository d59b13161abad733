"""In/Out schemas of the chat JSON API; operations return model objects and these schemas read them."""

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from ninja import Field, Schema

from chat.models import ChatRun, ChatSession, Phase, Role, RunStatus, SessionStatus, StopReason, ToolStatus
from juggernaut.events import last_seqs
from juggernaut.schemas import Choice

Mode = Field(
    ..., min_length=1, max_length=40, pattern=r"^[-a-zA-Z0-9_]+$", description="a routing policy's mode"
)


# Empty while a run goes on (and for a session none of whose runs has stopped).
StopReasonOrNone = Choice(["", *StopReason.values], "why the run stopped; empty while it goes on")


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
    status: Choice(SessionStatus.values)  # type: ignore[valid-type]
    cost_usd: float = Field(description="USD spent by all of the session's runs")
    steps_used: int
    last_stop_reason: StopReasonOrNone
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
    role: Choice(Role.values)  # type: ignore[valid-type]
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
    status: Choice(ToolStatus.values)  # type: ignore[valid-type]
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
    status: Choice(RunStatus.values)  # type: ignore[valid-type]
    phase: Choice(Phase.values)  # type: ignore[valid-type]
    mode: str
    model: str
    resumed_from_id: int | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    heartbeat_at: datetime | None
    cancel_requested_at: datetime | None
    stop_reason: StopReasonOrNone
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


# --- the data of a run's events (topic ``chat.run.<id>``): documented, not validated -------------
# juggernaut/events/docs.py tells the same contract in prose; tests/juggernaut/test_openapi_answers.py
# checks live events against these.

GUARDRAIL_RULES = (
    "repeated_failure",
    "same_result",
    "ping_pong",
    "repeated_text",
    "no_new_info",
    "no_tool_calls",
    "model_error",
)
GUARDRAIL_ACTIONS = ("observe", "steer", "block", "stop")


class RunEventData(Schema):
    run_id: int


class RunStartedData(RunEventData):
    session_id: int
    mode: str
    resumed_from: int | None = Field(description="the run this one resumes, or null")


class ApprovalAsked(Schema):
    tool_call_id: str
    name: str
    args: dict


class ApprovalDecision(Schema):
    tool_call_id: str
    name: str
    approved: bool
    by: str


class StatusData(RunEventData):
    """The run's phase and status; the other fields come with the phases that set them."""

    phase: Choice(Phase.values)  # type: ignore[valid-type]
    status: Choice(RunStatus.values)  # type: ignore[valid-type]
    model: str | None = Field(None, description="calling_model: the model called")
    tool_call_ids: list[str] | None = Field(None, description="tool_running: the calls running")
    approvals: list[ApprovalAsked] | None = Field(None, description="waiting_approval: the calls asked about")
    decision: ApprovalDecision | None = Field(None, description="an answer to an approval")
    waiting: int | None = Field(None, description="approvals still unanswered after `decision`")
    attempt: int | None = Field(None, description="retrying: the retry's number")
    error: str | None = Field(None, description="retrying: what failed")
    discard_partial: bool | None = Field(None, description="retrying: drop the text streamed so far")
    avoid_models: list[str] | None = Field(None, description="retrying: models the retry steers clear of")
    left_out: int | None = Field(None, description="routing: earliest messages left out of the prompt")
    requeued: int | None = Field(None, description="queued again after its runner was lost")


class TokenData(RunEventData):
    delta: str = Field(description="text, coalesced (about one event per 75 ms of streaming)")
    iteration: int


class ToolStartData(RunEventData):
    tool_call_id: str
    name: str
    args: dict
    needs_approval: bool


class ToolResultData(RunEventData):
    tool_call_id: str
    name: str
    ok: bool
    output: Any = Field(None, description="when ok: what the tool returned")
    error: str | None = Field(None, description="when not ok")
    duration_ms: int | None = Field(description="null when it did not run: denied, blocked, unknown tool")


class CountMeter(Schema):
    used: int
    limit: int | None


class SecondsMeter(Schema):
    used: float
    limit: int | None


class MoneyMeter(Schema):
    used: str = Field(description="USD, a decimal string")
    limit: str | None = Field(description="USD, a decimal string; null when unlimited")


class Crossing(Schema):
    meter: Choice(["steps", "iterations", "wall_seconds", "cost_usd", "retries"])  # type: ignore[valid-type]
    percent: int
    used: Any
    limit: Any


class BudgetData(RunEventData):
    steps: CountMeter
    iterations: CountMeter
    wall_seconds: SecondsMeter
    cost_usd: MoneyMeter
    retries: CountMeter
    crossed: list[Crossing] | None = Field(None, description="thresholds this change passed, each told once")


class GuardrailsData(RunEventData):
    rule: Choice(GUARDRAIL_RULES)  # type: ignore[valid-type]
    action: Choice(GUARDRAIL_ACTIONS)  # type: ignore[valid-type]
    fingerprint: str
    streak: int
    message: str


class StopReasonData(RunEventData):
    reason: Choice(StopReason.values)  # type: ignore[valid-type]
    detail: str = Field(description="a sentence")
    action: str = Field(description="what lets the work go on")


RUN_EVENTS = {
    "run_started": RunStartedData,
    "status": StatusData,
    "token": TokenData,
    "tool_start": ToolStartData,
    "tool_result": ToolResultData,
    "budget": BudgetData,
    "guardrails": GuardrailsData,
    "stop_reason": StopReasonData,
}
