"""In/Out schemas of the routing JSON API. Money is USD as a JSON number."""

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from juggernaut.schemas import Choice
from routing.models import CatalogModel, Period, Policy, Scope, Usage


class PolicyOut(Schema):
    mode: str
    model: str
    fallback_models: list[str]
    max_price_per_1k: float = Field(description="USD per 1,000 tokens, for prompt and completion prices each")
    max_context_tokens: int
    max_iterations: int
    max_output_tokens: int
    sort: Choice(Policy.Sort.values, "empty: OpenRouter's default")  # type: ignore[valid-type]
    allow_fallbacks: bool
    require_parameters: bool
    problems: list[str] = Field(description="Why the policy cannot be used as it stands; empty when it can")


class ModelOut(Schema):
    id: str
    name: str
    context_length: int
    prompt_price: float | None = Field(description="USD per token; null when the model has no fixed price")
    completion_price: float | None
    prompt_per_1k: float | None
    completion_per_1k: float | None
    supports_tools: bool
    supported_parameters: list[str]
    source: Choice(["sync", "snapshot"], "sync (from GET /models) or snapshot (the bundled, dated prices)")  # type: ignore[valid-type]

    @staticmethod
    def resolve_id(model: CatalogModel) -> str:
        return model.model_id


class UsageOut(Schema):
    id: int
    created_at: datetime
    session: str
    run: str
    mode: str
    model_requested: str
    model_used: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    max_tokens: int
    cost_usd: float
    cost_source: Choice(Usage.CostSource.values)  # type: ignore[valid-type]
    reserved_usd: float
    latency_ms: int
    ttft_ms: int | None
    finish_reason: str
    native_finish_reason: str
    generation_id: str
    error_code: str
    error: str
    reason: str


class BudgetIn(Schema):
    scope: Literal["global", "mode", "session"]
    mode: str | None = Field(None, max_length=40)
    session: str | None = Field(None, max_length=100)
    period: Literal["day", "month", "total"]
    limit_usd: float = Field(..., ge=0, le=1_000_000, allow_inf_nan=False)
    soft_limit_usd: float | None = Field(None, ge=0, le=1_000_000, allow_inf_nan=False)


class BudgetOut(Schema):
    id: int
    scope: Choice(Scope.values)  # type: ignore[valid-type]
    mode: str
    session: str
    period: Choice(Period.values)  # type: ignore[valid-type]
    limit_usd: float
    soft_limit_usd: float | None
    spent_usd: float = Field(description="Spent in the current period")
    reserved_usd: float = Field(description="Held by calls in flight")
    state: Choice(["ok", "warn", "error"], "ok, warn (past the soft limit) or error (limit reached)")  # type: ignore[valid-type]


class CompletionMessageIn(Schema):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(None, max_length=100)
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = Field(None, max_length=200)


class CompletionIn(Schema):
    mode: str = Field(..., min_length=1, max_length=40)
    messages: list[CompletionMessageIn] = Field(..., min_length=1, max_length=1000)
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    session: str = Field("", max_length=100)
    run: str = Field("", max_length=100)


class ToolCallOut(Schema):
    id: str
    type: Choice(["function"])  # type: ignore[valid-type]
    function: dict[str, str]


class CompleteUsageOut(Schema):
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class CompleteOut(Schema):
    model: str
    content: str
    tool_calls: list[ToolCallOut]
    finish_reason: str | None
    usage: CompleteUsageOut
    usage_id: int
    generation_id: str
