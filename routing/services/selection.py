"""Picking a model for a mode: token estimates, the policy's candidates, price, context and tools."""

import json
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from routing.errors import RoutingError
from routing.models import (
    CatalogModel,
    Policy,
)

TOPIC = "routing"
MILLION = Decimal(1_000_000)
DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"


def usd(value: Decimal | None) -> str:
    """Money for people: cents above a dollar, more digits below it (calls cost fractions of a cent)."""
    if value is None:
        return "–"
    value = Decimal(value)
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if value == 0:
        return "$0"
    return f"${value:.4f}" if abs(value) >= Decimal("0.0001") else f"${value:.6f}"


# --- estimating and selecting ---------------------------------------------------------------------


def prompt_token_bounds(messages: list[dict], tools: list[dict] | None = None) -> tuple[int, int]:
    """``(estimate, upper bound)`` of a request's prompt tokens.

    The estimate (about 4 bytes per token) decides whether a prompt fits a context window. The bound
    prices the reservation: a byte-level tokenizer never makes more tokens than bytes, so the bytes of
    the serialised messages and tools, plus a little per message for the chat template, cannot be
    exceeded by text prompts.
    """
    size = sum(len(json.dumps(m, ensure_ascii=False).encode()) for m in messages)
    size += len(json.dumps(tools, ensure_ascii=False).encode()) if tools else 0
    upper = size + 8 * len(messages) + 16
    return min(math.ceil(size / 4) + 4 * len(messages) + 8, upper), upper


@dataclass
class Selection:
    """The chosen model and fallbacks for one call, with the prices its reservation uses."""

    policy: Policy
    models: list[str]
    reason: str
    prompt_tokens: int
    prompt_tokens_max: int
    max_tokens: int
    prompt_price: Decimal  # USD per token: the highest of the candidates (the cap for unpriced ones)
    completion_price: Decimal
    needs_tools: bool = False
    skipped: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.models[0]

    def worst_case(self, max_tokens: int | None = None) -> Decimal:
        tokens = self.max_tokens if max_tokens is None else max_tokens
        return self.prompt_tokens_max * self.prompt_price + tokens * self.completion_price

    def provider(self) -> dict:
        """OpenRouter's provider preferences: always ``max_price`` (USD per million tokens), so the
        provider enforces the same cap the policy does."""
        cap = float(self.policy.max_price_per_token * MILLION)
        prefs: dict = {
            "max_price": {"prompt": cap, "completion": cap},
            "allow_fallbacks": self.policy.allow_fallbacks,
            "require_parameters": self.policy.require_parameters,
        }
        if self.policy.sort:
            prefs["sort"] = self.policy.sort
        return prefs

    def body(self, messages: list[dict], *, tools: list[dict] | None = None, tool_choice=None) -> dict:
        body: dict = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens}
        if settings.OPENROUTER_EXTENSIONS:
            body["provider"] = self.provider()
            if len(self.models) > 1:
                body["models"] = self.models
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        return body


def policy_get(mode: str) -> Policy:
    policy = Policy.objects.filter(mode=mode).first()
    if policy is None:
        known = ", ".join(Policy.objects.values_list("mode", flat=True))
        raise RoutingError("unknown_mode", f"no policy for mode '{mode}' (known: {known})", status=404)
    return policy


def route_select(
    mode: str,
    *,
    prompt_tokens: int,
    prompt_tokens_max: int | None = None,
    max_tokens: int | None = None,
    needs_tools: bool = False,
    avoid_models: Collection[str] = (),
) -> Selection:
    """Pick the policy's first model that fits price, context and tool support, with the others that
    fit as fallbacks; refuse with ``no_model_fits`` and a sentence when none does. ``avoid_models``
    (models that just failed for the caller) go last: the next model that fits is tried first."""
    policy = policy_get(mode)
    wanted = max_tokens or policy.max_output_tokens
    useful = min(settings.ROUTING_MIN_USEFUL_TOKENS, wanted)
    if prompt_tokens + useful > policy.max_context_tokens:
        raise RoutingError(
            "no_model_fits",
            f"A prompt of about {prompt_tokens:,} tokens does not fit the {mode} policy's context of "
            f"{policy.max_context_tokens:,} tokens with room for an answer; shorten it or use a mode with a "
            "larger context.",
            status=422,
        )
    catalog = CatalogModel.objects.lookup(policy.candidates)
    fits: list[CatalogModel] = []
    skipped: list[str] = []
    for model_id in policy.candidates:
        entry = catalog.get(model_id)
        if entry is None:
            skipped.append(f"{model_id} is not in the catalog")
        elif problem := policy.price_problem(entry):
            skipped.append(problem)
        elif needs_tools and not entry.supports_tools:
            skipped.append(f"{model_id} does not support tools")
        elif entry.context_length and prompt_tokens + useful > entry.context_length:
            skipped.append(f"{model_id}'s context of {entry.context_length:,} tokens is too small")
        else:
            fits.append(entry)
    if not fits:
        raise RoutingError(
            "no_model_fits",
            f"No model of the {mode} policy fits this request: " + "; ".join(skipped) + ".",
            status=422,
            details={"skipped": skipped},
        )
    avoided = [m.model_id for m in fits if m.model_id in avoid_models]
    fits = [m for m in fits if m.model_id not in avoid_models] + [
        m for m in fits if m.model_id in avoid_models
    ]
    room = [policy.max_context_tokens] + [m.context_length for m in fits if m.context_length]
    room += [m.max_completion_tokens + prompt_tokens for m in fits if m.max_completion_tokens]
    cap = policy.max_price_per_token
    first = fits[0]
    reason = f"{first.model_id}: the {mode} policy's " + (
        "first choice" if first.model_id == policy.model else "first fallback that fits"
    )
    if skipped:
        reason += " (" + "; ".join(skipped) + ")"
    if avoided:
        reason += f" (avoiding {', '.join(avoided)} after an error)"
    return Selection(
        policy=policy,
        models=[m.model_id for m in fits],
        reason=reason,
        prompt_tokens=prompt_tokens,
        prompt_tokens_max=max(prompt_tokens_max or prompt_tokens, prompt_tokens),
        max_tokens=max(min([wanted] + [r - prompt_tokens for r in room]), 1),
        prompt_price=max(m.prompt_price if m.priced else cap for m in fits),
        completion_price=max(m.completion_price if m.priced else cap for m in fits),
        needs_tools=needs_tools,
        skipped=skipped,
    )
