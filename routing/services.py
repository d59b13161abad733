"""Routing workflows: pick a model for a mode, reserve its worst case against the budgets, call it, and
record what it really cost.

Spend and reservations live on ``cost_tracking`` rollup rows (all calls, the mode, the session; per
day, month and in total). A reservation locks the rows its call touches (``SELECT … FOR UPDATE`` on
Postgres; SQLite's IMMEDIATE transactions take the database's write lock), checks every budget against
``cost + reserved + worst case``, and adds the worst case to ``reserved``; recording the call moves it
from ``reserved`` to ``cost`` under the same locks. So no budget is overspent, however many calls run
at once, as long as no call costs more than its worst case (see ``prompt_token_bounds``).
"""

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from juggernaut.events import publish
from routing.clients import Completion, OpenRouterClient, OpenRouterError
from routing.errors import RoutingError
from routing.models import (
    Budget,
    CatalogModel,
    CostTracking,
    Period,
    Policy,
    Reservation,
    RoutingState,
    Scope,
    Usage,
    period_start,
)

log = logging.getLogger(__name__)

TOPIC = "routing"
MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.0000000001")
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
) -> Selection:
    """Pick the policy's first model that fits price, context and tool support, with the others that
    fit as fallbacks; refuse with ``no_model_fits`` and a sentence when none does."""
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
    room = [policy.max_context_tokens] + [m.context_length for m in fits if m.context_length]
    room += [m.max_completion_tokens + prompt_tokens for m in fits if m.max_completion_tokens]
    cap = policy.max_price_per_token
    first = fits[0]
    reason = f"{first.model_id}: the {mode} policy's " + (
        "first choice" if first.model_id == policy.model else "first fallback that fits"
    )
    if skipped:
        reason += " (" + "; ".join(skipped) + ")"
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


# --- budgets: reserve and record ------------------------------------------------------------------


def _rollup_keys(mode: str, session: str, now) -> list[tuple[str, object, str, str]]:
    keys = []
    for period in Period.values:
        start = period_start(period, now)
        keys += [(period, start, "", ""), (period, start, mode, "")]
        if session:
            keys.append((period, start, "", session))
    return keys


def _rollups(keys, *, lock: bool = False) -> dict[tuple, CostTracking]:
    """The existing rollup rows for ``keys``; with ``lock``, locked in id order (every locker takes
    them in the same order, so no deadlocks). A few neighbouring rows may be locked too; no harm."""
    rows = CostTracking.objects.filter(
        period_start__in={k[1] for k in keys}, mode__in={k[2] for k in keys}, session__in={k[3] for k in keys}
    )
    if lock:
        rows = rows.select_for_update().order_by("pk")
    wanted = set(keys)
    return {key: r for r in rows if (key := (r.period, r.period_start, r.mode, r.session)) in wanted}


def _rollups_ensure(keys) -> None:
    """Create missing rollup rows (in key order, so concurrent creators queue instead of deadlocking).
    Most calls find them all and write nothing here."""
    if len(_rollups(keys)) == len(keys):
        return
    CostTracking.objects.bulk_create(
        [CostTracking(period=p, period_start=s, mode=m, session=x) for p, s, m, x in sorted(keys, key=str)],
        ignore_conflicts=True,
    )


def _budgets_for(mode: str, session: str):
    query = Q(scope=Scope.GLOBAL) | Q(scope=Scope.MODE, mode=mode)
    if session:
        query |= Q(scope=Scope.SESSION, session=session)
    return list(Budget.objects.filter(query))


def _room(budgets: list[Budget], rows: dict, now) -> tuple[Decimal | None, Budget | None]:
    """What is left under the tightest budget, and that budget (None, None without budgets)."""
    tightest: tuple[Decimal | None, Budget | None] = (None, None)
    for b in budgets:
        row = rows[(b.period, period_start(b.period, now), *b.key)]
        left = b.limit_usd - row.committed_usd
        if tightest[0] is None or left < tightest[0]:
            tightest = (left, b)
    return tightest


def budget_reserve(selection: Selection, *, session: str = "", run: str = "", now=None) -> Reservation:
    """Hold the call's worst case on its rollup rows, or refuse with ``budget_exceeded``.

    A call that does not fit with its ``max_tokens`` but would with fewer, still at least
    ROUTING_MIN_USEFUL_TOKENS, gets ``selection.max_tokens`` lowered instead of a refusal.
    """
    now = now or timezone.now()
    mode = selection.policy.mode
    keys = _rollup_keys(mode, session, now)
    refused: dict | None = None
    _rollups_ensure(keys)  # outside the locking transaction, so it holds no insert locks
    with transaction.atomic():
        rows = _rollups(keys, lock=True)
        room, tightest = _room(_budgets_for(mode, session), rows, now)
        worst = selection.worst_case()
        if room is not None and worst > room:
            prompt_part = selection.worst_case(0)
            fit = int((room - prompt_part) / selection.completion_price) if selection.completion_price else 0
            if selection.completion_price and fit >= min(
                settings.ROUTING_MIN_USEFUL_TOKENS, selection.max_tokens
            ):
                selection.max_tokens = fit
                selection.reason += f"; max_tokens lowered to {fit:,} to fit {tightest.label}"
                worst = selection.worst_case()
            else:
                refused = {
                    "budget": tightest.label,
                    "left_usd": str(max(room, Decimal(0))),
                    "needed_usd": str(worst),
                }
        if refused is None:
            ids = [r.pk for r in rows.values()]
            CostTracking.objects.filter(pk__in=ids).update(reserved_usd=F("reserved_usd") + worst)
            return Reservation.objects.create(
                created_at=now,
                mode=mode,
                session=session,
                run=run,
                model=selection.model,
                amount_usd=worst,
                prompt_tokens_max=selection.prompt_tokens_max,
                max_tokens=selection.max_tokens,
                rollups=ids,
            )
    message = (
        f"Budget exceeded: the {refused['budget']} has {usd(Decimal(refused['left_usd']))} left, and this call "
        f"could cost up to {usd(Decimal(refused['needed_usd']))}."
    )
    with transaction.atomic():
        publish(TOPIC, "budget_refused", {"mode": mode, "session": session, **refused, "message": message})
    raise RoutingError("budget_exceeded", message, status=402, details=refused)


def _actual_cost(
    completion: Completion | None, reservation: Reservation, client: OpenRouterClient | None
) -> tuple[Decimal, str]:
    """What the call cost and how we know: the usage chunk, the generation's stats, tokens × price, or
    (when nothing says) the whole reservation."""
    if completion is None:
        return Decimal(0), Usage.CostSource.NONE
    usage = completion.usage
    if usage is not None and usage.cost is not None:
        return usage.cost, Usage.CostSource.USAGE
    if completion.id and client is not None and usage is None:
        try:
            stats = client.generation(completion.id)
            if stats.get("total_cost") is not None:
                return Decimal(str(stats["total_cost"])), Usage.CostSource.GENERATION
        except OpenRouterError as exc:
            log.info("no generation stats for %s: %s", completion.id, exc)
    if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
        entry = CatalogModel.objects.lookup([completion.model or reservation.model]).get(
            completion.model or reservation.model
        )
        if entry is not None and entry.priced:
            return (
                usage.prompt_tokens * entry.prompt_price + usage.completion_tokens * entry.completion_price,
                Usage.CostSource.TOKENS,
            )
    return reservation.amount_usd, Usage.CostSource.RESERVATION


def usage_record(
    reservation: Reservation,
    selection: Selection,
    completion: Completion | None,
    *,
    error: OpenRouterError | None = None,
    latency: float = 0.0,
    client: OpenRouterClient | None = None,
    now=None,
) -> Usage:
    """Settle a reservation at the call's actual cost, record the call, update the rollups and tell the
    page. ``completion`` is None when the call failed before any answer (nothing is charged then)."""
    now = now or timezone.now()
    cost, source = _actual_cost(completion, reservation, client)
    cost = cost.quantize(CENT_FRACTION, rounding=ROUND_HALF_UP)
    error = error or (completion.error if completion else None)
    usage = completion.usage if completion else None
    crossed: list[dict] = []
    with transaction.atomic():
        settled = Reservation.objects.filter(pk=reservation.pk, settled_at__isnull=True).update(
            settled_at=now
        )
        if settled != 1:
            raise RoutingError(
                "already_settled", f"reservation {reservation.pk} was already recorded", status=409
            )
        rows = {
            r.pk: r
            for r in CostTracking.objects.select_for_update()
            .filter(pk__in=reservation.rollups)
            .order_by("pk")
        }
        CostTracking.objects.filter(pk__in=list(rows)).update(
            reserved_usd=F("reserved_usd") - reservation.amount_usd,
            cost_usd=F("cost_usd") + cost,
            calls=F("calls") + 1,
            errors=F("errors") + (1 if error else 0),
            prompt_tokens=F("prompt_tokens") + (usage.prompt_tokens if usage else 0),
            completion_tokens=F("completion_tokens") + (usage.completion_tokens if usage else 0),
        )
        by_key = {(r.period, r.period_start, r.mode, r.session): r for r in rows.values()}
        for b in _budgets_for(reservation.mode, reservation.session):
            row = by_key.get((b.period, period_start(b.period, reservation.created_at), *b.key))
            if row is None:
                continue
            before, after = row.cost_usd, row.cost_usd + cost
            for level, limit in (("soft", b.soft_limit_usd), ("limit", b.limit_usd)):
                if limit is not None and before < limit <= after:
                    crossed.append(
                        {"budget": b.label, "level": level, "limit_usd": str(limit), "spent_usd": str(after)}
                    )
        record = Usage.objects.create(
            created_at=now,
            session=reservation.session,
            run=reservation.run,
            mode=reservation.mode,
            model_requested=selection.model,
            model_used=(completion.model if completion else "") or "",
            provider=(completion.provider if completion else "")[:100],
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            max_tokens=reservation.max_tokens,
            cost_usd=cost,
            cost_source=source,
            reserved_usd=reservation.amount_usd,
            latency_ms=int(latency * 1000),
            ttft_ms=int(completion.first_token_seconds * 1000)
            if completion and completion.first_token_seconds
            else None,
            finish_reason=(completion.finish_reason if completion else "error") or "",
            native_finish_reason=(completion.native_finish_reason if completion else "") or "",
            generation_id=(completion.id if completion else "")[:200],
            error_code=error.code[:60] if error else "",
            error=error.message[:2000] if error else "",
            reason=selection.reason[:2000],
        )
        publish(TOPIC, "call", usage_event(record))
        for c in crossed:
            publish(
                TOPIC,
                "budget_threshold",
                {**c, "message": f"{c['budget']}: {c['level']} of {usd(Decimal(c['limit_usd']))} reached"},
            )
    return record


def usage_event(u: Usage) -> dict:
    model = u.model_used or u.model_requested
    outcome = (
        f"failed ({u.error_code})" if u.error_code else f"{u.prompt_tokens} in / {u.completion_tokens} out"
    )
    return {
        "id": u.pk,
        "mode": u.mode,
        "model": model,
        "cost_usd": str(u.cost_usd.normalize()),
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "finish_reason": u.finish_reason,
        "error_code": u.error_code,
        "message": f"{u.mode} → {model}: {usd(u.cost_usd)}, {outcome}",
    }


# --- a routed completion --------------------------------------------------------------------------


def key_required() -> None:
    if not settings.OPENROUTER_API_KEY and settings.OPENROUTER_BASE_URL.rstrip("/") == DEFAULT_BASE_URL:
        raise RoutingError(
            "not_configured",
            "No OpenRouter key: set OPENROUTER_API_KEY in the environment and restart (or point "
            "OPENROUTER_BASE_URL at an OpenAI-compatible server).",
            status=503,
        )


def completion_run(
    mode: str,
    messages: list[dict],
    *,
    tools: list[dict] | None = None,
    tool_choice=None,
    max_tokens: int | None = None,
    session: str = "",
    run: str = "",
    client: OpenRouterClient | None = None,
    on_delta: Callable[[str], None] | None = None,
) -> tuple[Usage, Completion]:
    """One routed, budgeted, recorded completion (streamed from the server; ``on_delta`` sees the text).

    Raises ``RoutingError``: ``no_model_fits``, ``budget_exceeded``, or ``model_error`` after the failed
    call has been recorded and charged.
    """
    key_required()
    estimate, upper = prompt_token_bounds(messages, tools)
    selection = route_select(
        mode, prompt_tokens=estimate, prompt_tokens_max=upper, max_tokens=max_tokens, needs_tools=bool(tools)
    )
    reservation = budget_reserve(selection, session=session, run=run)
    client = client or OpenRouterClient()
    started = time.monotonic()
    completion: Completion | None = None
    error: OpenRouterError | None = None
    try:
        stream = client.chat_stream(selection.body(messages, tools=tools, tool_choice=tool_choice))
        completion = stream.completion
        for piece in stream:
            if on_delta is not None:
                on_delta(piece)
    except OpenRouterError as exc:
        error = exc
    except BaseException as exc:  # the caller went away mid-stream: still settle the reservation
        usage_record(reservation, selection, completion, error=OpenRouterError("aborted", str(exc)[:200]),
                     latency=time.monotonic() - started, client=client)  # fmt: skip
        raise
    record = usage_record(
        reservation, selection, completion, error=error, latency=time.monotonic() - started, client=client
    )
    failure = error or (completion.error if completion else None)
    if failure is not None:
        raise RoutingError(
            "model_error",
            f"The model call failed: {failure}",
            status=502,
            details={
                "retryable": not failure.permanent,
                "retry_after": failure.retry_after,
                "usage_id": record.pk,
            },
        )
    return record, completion


# --- catalog, key, budgets and policies -----------------------------------------------------------


def catalog_sync(*, client: OpenRouterClient | None = None) -> int:
    """Replace the catalog with ``GET /models`` (entries gone from the list are dropped); returns the count.
    A failure is kept on the state row for the page and raised as ``model_error``."""
    state = RoutingState.get()
    try:
        entries = (client or OpenRouterClient()).models()
    except OpenRouterError as exc:
        RoutingState.objects.filter(pk=state.pk).update(sync_error=str(exc)[:300])
        raise RoutingError("model_error", f"The model list could not be fetched: {exc}", status=502) from exc
    now = timezone.now()
    with transaction.atomic():
        CatalogModel.objects.exclude(model_id__in=[e.id for e in entries]).delete()
        CatalogModel.objects.bulk_create(
            [
                CatalogModel(
                    model_id=e.id,
                    name=e.name,
                    context_length=e.context_length,
                    prompt_price=e.prompt_price,
                    completion_price=e.completion_price,
                    supported_parameters=e.supported_parameters,
                    max_completion_tokens=e.max_completion_tokens,
                    source="sync",
                    synced_at=now,
                )
                for e in entries
            ],  # fmt: skip
            update_conflicts=True,
            unique_fields=["model_id"],
            update_fields=[
                "name",
                "context_length",
                "prompt_price",
                "completion_price",
                "supported_parameters",
                "max_completion_tokens",
                "source",
                "synced_at",
            ],  # fmt: skip
        )
        RoutingState.objects.filter(pk=state.pk).update(
            models_synced_at=now, models_count=len(entries), sync_error=""
        )
        publish(TOPIC, "catalog_synced", {"models": len(entries), "message": f"{len(entries)} models synced"})
    return len(entries)


def key_check(*, client: OpenRouterClient | None = None) -> RoutingState:
    """Ask ``GET /key`` for the key's limit, remaining credit and usage, and keep the answer (or the error)."""
    state = RoutingState.get()
    fields: dict = {"key_checked_at": timezone.now()}
    try:
        key_required()
        info = (client or OpenRouterClient()).key()
        fields.update(key_label=info.label[:200], key_limit=info.limit, key_remaining=info.remaining,
                      key_usage=info.usage, key_error="")  # fmt: skip
    except (OpenRouterError, RoutingError) as exc:
        fields["key_error"] = str(getattr(exc, "message", exc))[:300]
    with transaction.atomic():
        RoutingState.objects.filter(pk=state.pk).update(**fields)
        ok = not fields.get("key_error")
        publish(TOPIC, "key_checked", {"ok": ok, "message": "key accepted" if ok else "key refused"})
    return RoutingState.get()


def budget_set(
    *,
    scope: str,
    period: str,
    limit_usd: Decimal,
    soft_limit_usd: Decimal | None = None,
    mode: str = "",
    session: str = "",
) -> tuple[Budget, bool]:
    """Create or update the budget of one scope and period; returns ``(budget, created)``."""
    if scope not in Scope.values or period not in Period.values:
        raise RoutingError(
            "bad_budget", "scope is global, mode or session; period is day, month or total", status=422
        )
    mode, session = (mode or "").strip(), (session or "").strip()
    if scope == Scope.MODE:
        policy_get(mode)
    if scope == Scope.SESSION and not session:
        raise RoutingError("bad_budget", "a session budget needs a session", status=422)
    if limit_usd < 0 or (soft_limit_usd is not None and not 0 <= soft_limit_usd <= limit_usd):
        raise RoutingError(
            "bad_budget", "limits are at least 0, and the soft limit is not above the limit", status=422
        )
    key = {"scope": scope, "period": period, "mode": mode if scope == Scope.MODE else "",
           "session": session if scope == Scope.SESSION else ""}  # fmt: skip
    with transaction.atomic():
        budget, created = Budget.objects.update_or_create(
            **key, defaults={"limit_usd": limit_usd, "soft_limit_usd": soft_limit_usd}
        )
        publish(TOPIC, "budget_set", {"budget": budget.label, "limit_usd": str(limit_usd),
                                      "message": f"{budget.label} set to {usd(limit_usd)}"})  # fmt: skip
    return budget, created


POLICY_FIELDS = ["model", "fallback_models", "max_price_per_1k", "max_context_tokens", "max_iterations",
                 "max_output_tokens", "sort", "allow_fallbacks", "require_parameters"]  # fmt: skip


def policy_update(mode: str, **changes) -> Policy:
    """Change a policy; refused with ``bad_policy`` (every problem in one sentence) when its models
    would break its own caps or are unknown."""
    policy = policy_get(mode)
    for name, value in changes.items():
        if name not in POLICY_FIELDS:
            raise RoutingError("bad_policy", f"unknown policy field {name}", status=422)
        setattr(policy, name, value)
    try:
        policy.full_clean()
    except ValidationError as exc:
        raise RoutingError(
            "bad_policy",
            " ".join(exc.messages),
            status=422,
            details=exc.message_dict if hasattr(exc, "error_dict") else None,
        ) from exc
    with transaction.atomic():
        policy.save()
        publish(TOPIC, "policy_updated", {"mode": mode, "message": f"policy {mode} changed"})
    return policy
