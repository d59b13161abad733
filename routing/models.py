"""Routing's tables: the model catalog, per-mode policies, budgets, reservations, every call and its rollups.

Money is USD in ``DecimalField``s. Prices are stored per token (as OpenRouter lists them) and shown
per 1k tokens: "$0.01 per 1k tokens" caps the prompt price and the completion price each at
$0.00001 per token (see the README).
"""

import json
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from juggernaut.models import SingleRow

SNAPSHOT_PATH = Path(__file__).with_name("prices.json")
THOUSAND = Decimal(1000)
TOTAL_START = date(1970, 1, 1)  # the period_start of "total" rollups
MONEY = {"max_digits": 18, "decimal_places": 10}
PRICE = {"max_digits": 20, "decimal_places": 14}


@cache
def price_snapshot() -> dict:
    """The bundled, dated prices of the policy models, for validation before the first sync."""
    return json.loads(SNAPSHOT_PATH.read_text())


def per_1k(price: Decimal | None) -> Decimal | None:
    return None if price is None else (price * THOUSAND).normalize()


class CatalogQuerySet(models.QuerySet):
    def lookup(self, ids: list[str]) -> dict[str, "CatalogModel"]:
        """Catalog entries by id: synced rows first, then the bundled snapshot (unsaved, source
        "snapshot"); ids known to neither are missing from the result."""
        found = {m.model_id: m for m in self.filter(model_id__in=ids)}
        snapshot = price_snapshot()["models"]
        for model_id in ids:
            if model_id not in found and model_id in snapshot:
                found[model_id] = CatalogModel.from_snapshot(model_id, snapshot[model_id])
        return found


class CatalogModel(models.Model):
    """One model of ``GET /models``. Prices are USD per token; NULL means no fixed price
    (``openrouter/auto`` lists "-1"): the policy's cap stands in for it."""

    model_id = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200, blank=True)
    context_length = models.PositiveIntegerField(default=0)
    prompt_price = models.DecimalField(null=True, blank=True, **PRICE)
    completion_price = models.DecimalField(null=True, blank=True, **PRICE)
    supported_parameters = models.JSONField(default=list, blank=True)
    max_completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, default="sync")
    synced_at = models.DateTimeField(default=timezone.now)

    objects = CatalogQuerySet.as_manager()

    class Meta:
        db_table = "routing_models"
        ordering = ["model_id"]
        verbose_name = "catalog model"

    def __str__(self) -> str:
        return self.model_id

    @classmethod
    def from_snapshot(cls, model_id: str, entry: dict) -> "CatalogModel":
        price = lambda v: None if v is None or Decimal(v) < 0 else Decimal(v)  # noqa: E731
        return cls(
            model_id=model_id,
            name=entry.get("name", model_id),
            context_length=entry["context_length"],
            prompt_price=price(entry["prompt"]),
            completion_price=price(entry["completion"]),
            supported_parameters=entry.get("supported_parameters", []),
            source="snapshot",
        )

    @property
    def priced(self) -> bool:
        return self.prompt_price is not None and self.completion_price is not None

    @property
    def prompt_per_1k(self) -> Decimal | None:
        return per_1k(self.prompt_price)

    @property
    def completion_per_1k(self) -> Decimal | None:
        return per_1k(self.completion_price)

    @property
    def supports_tools(self) -> bool:
        return "tools" in (self.supported_parameters or [])


class Policy(models.Model):
    """How one mode picks its model: the model and fallbacks, a price cap, context and iteration limits."""

    class Sort(models.TextChoices):
        DEFAULT = "", "OpenRouter's default (balance price and uptime)"
        PRICE = "price", "lowest price"
        THROUGHPUT = "throughput", "highest throughput"
        LATENCY = "latency", "lowest latency"

    mode = models.SlugField(max_length=40, unique=True)
    model = models.CharField(max_length=200, help_text="First choice, e.g. openai/gpt-4o.")
    fallback_models = models.JSONField(
        default=list, blank=True, help_text="Tried in order when the first fails."
    )
    max_price_per_1k = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        help_text="USD per 1,000 tokens, applied to prompt and completion prices separately.",
    )
    max_context_tokens = models.PositiveIntegerField(help_text="Largest prompt + answer this mode sends.")
    max_iterations = models.PositiveIntegerField(help_text="Model calls per run of the agent loop.")
    max_output_tokens = models.PositiveIntegerField(
        default=4096, help_text="max_tokens when a call gives none."
    )
    sort = models.CharField(max_length=16, choices=Sort.choices, default=Sort.DEFAULT, blank=True)
    allow_fallbacks = models.BooleanField(default=True, help_text="Let OpenRouter try other providers.")
    require_parameters = models.BooleanField(
        default=False, help_text="Only providers that support every parameter sent (e.g. tools)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "routing_policies"
        ordering = ["mode"]
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_price_per_1k__gt=0), name="routing_policy_price_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(max_context_tokens__gt=0), name="routing_policy_context_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.mode

    @property
    def candidates(self) -> list[str]:
        """The model, then its fallbacks, without repeats."""
        seen: list[str] = []
        for model_id in [self.model, *(self.fallback_models or [])]:
            if model_id and model_id not in seen:
                seen.append(model_id)
        return seen

    @property
    def max_price_per_token(self) -> Decimal:
        return self.max_price_per_1k / THOUSAND

    def price_problem(self, entry: CatalogModel) -> str:
        """Why ``entry`` breaks this policy's price cap, or "" when it does not."""
        if not entry.priced:
            return ""  # no fixed price: max_price makes the provider enforce the cap
        cap = self.max_price_per_1k.normalize()
        for side, price in (("prompt", entry.prompt_per_1k), ("completion", entry.completion_per_1k)):
            if price > self.max_price_per_1k:
                return f"{entry.model_id} costs ${price} per 1k {side} tokens, above this policy's ${cap} cap"
        return ""

    def problems(self, catalog: dict[str, CatalogModel]) -> list[str]:
        """Everything that makes this policy unusable: unknown models, models above its caps."""
        found = []
        if not isinstance(self.fallback_models, list) or not all(
            isinstance(m, str) for m in self.fallback_models
        ):
            return ["fallback models must be a list of model ids"]
        for model_id in self.candidates:
            entry = catalog.get(model_id)
            if entry is None:
                found.append(f"{model_id} is not in the model catalog (sync the catalog, or check the id)")
            elif problem := self.price_problem(entry):
                found.append(problem)
        return found

    def clean(self) -> None:
        if isinstance(self.fallback_models, str):
            self.fallback_models = [m.strip() for m in self.fallback_models.split(",") if m.strip()]
        if self.max_price_per_1k is None or self.max_price_per_1k <= 0:
            raise ValidationError({"max_price_per_1k": "the price cap must be above zero"})
        problems = self.problems(CatalogModel.objects.lookup(self.candidates))
        if problems:
            raise ValidationError(problems)


class Scope(models.TextChoices):
    GLOBAL = "global"
    MODE = "mode"
    SESSION = "session"


class Period(models.TextChoices):
    DAY = "day"
    MONTH = "month"
    TOTAL = "total"


def period_start(period: str, now=None) -> date:
    today = (now or timezone.now()).date()
    if period == Period.DAY:
        return today
    if period == Period.MONTH:
        return today.replace(day=1)
    return TOTAL_START


class Budget(models.Model):
    """A spending limit for everything, one mode or one session, per UTC day, month or in total.

    Reaching the soft limit raises an event and an Overview warning; the hard limit refuses calls.
    """

    scope = models.CharField(max_length=8, choices=Scope.choices)
    mode = models.CharField(max_length=40, blank=True, default="")
    session = models.CharField(max_length=100, blank=True, default="")
    period = models.CharField(max_length=8, choices=Period.choices)
    limit_usd = models.DecimalField(max_digits=14, decimal_places=6)
    soft_limit_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "routing_budgets"
        ordering = ["scope", "mode", "session", "period"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "mode", "session", "period"], name="routing_budget_uniq"
            ),
            models.CheckConstraint(condition=models.Q(limit_usd__gte=0), name="routing_budget_limit_nonneg"),
            models.CheckConstraint(
                condition=models.Q(soft_limit_usd__isnull=True)
                | models.Q(soft_limit_usd__lte=models.F("limit_usd")),
                name="routing_budget_soft_below_limit",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label}: ${self.limit_usd.normalize()}"

    @property
    def label(self) -> str:
        """``daily budget of mode ops``: lower case, to sit inside a sentence (capfirst at its start)."""
        who = {"global": "all calls", "mode": f"mode {self.mode}", "session": f"session {self.session}"}[
            self.scope
        ]
        return f"{ {'day': 'daily', 'month': 'monthly', 'total': 'total'}[self.period] } budget of {who}"

    @property
    def key(self) -> tuple[str, str]:
        """The (mode, session) of the rollup row this budget is checked against."""
        return (
            self.mode if self.scope == Scope.MODE else "",
            self.session if self.scope == Scope.SESSION else "",
        )

    def clean(self) -> None:
        if self.scope == Scope.MODE and not self.mode:
            raise ValidationError({"mode": "a mode budget needs a mode"})
        if self.scope == Scope.SESSION and not self.session:
            raise ValidationError({"session": "a session budget needs a session"})
        if self.scope != Scope.MODE:
            self.mode = ""
        if self.scope != Scope.SESSION:
            self.session = ""
        if (
            self.soft_limit_usd is not None
            and self.limit_usd is not None
            and self.soft_limit_usd > self.limit_usd
        ):
            raise ValidationError({"soft_limit_usd": "the soft limit must not be above the limit"})


class CostTracking(models.Model):
    """Rollup of calls and spend for one period and key: all calls (mode and session blank), one mode,
    or one session. ``reserved_usd`` holds the worst cases of calls still running; budgets are
    checked against ``cost_usd + reserved_usd`` under this row's lock."""

    period = models.CharField(max_length=8, choices=Period.choices)
    period_start = models.DateField()
    mode = models.CharField(max_length=40, blank=True, default="")
    session = models.CharField(max_length=100, blank=True, default="")
    calls = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(default=Decimal(0), **MONEY)
    reserved_usd = models.DecimalField(default=Decimal(0), **MONEY)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "cost_tracking"
        ordering = ["-period_start", "period", "mode", "session"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "period_start", "mode", "session"], name="cost_tracking_uniq"
            )
        ]
        verbose_name_plural = "cost tracking"

    def __str__(self) -> str:
        who = self.mode or self.session or "all"
        return f"{self.period} {self.period_start} {who}: ${self.cost_usd.normalize()}"

    @property
    def committed_usd(self) -> Decimal:
        return self.cost_usd + self.reserved_usd


class Reservation(models.Model):
    """The worst-case cost of a call in flight, held on its rollup rows until the call is recorded."""

    created_at = models.DateTimeField(default=timezone.now)
    mode = models.CharField(max_length=40)
    session = models.CharField(max_length=100, blank=True, default="")
    run = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=200)
    amount_usd = models.DecimalField(**MONEY)
    prompt_tokens_max = models.PositiveIntegerField()
    max_tokens = models.PositiveIntegerField()
    rollups = models.JSONField(default=list)  # CostTracking ids holding the amount
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "routing_reservations"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"reservation {self.pk} ({self.mode}, ${self.amount_usd.normalize()})"


class UsageQuerySet(models.QuerySet):
    def today(self, now=None) -> "UsageQuerySet":
        return self.filter(created_at__date=(now or timezone.now()).date())

    def made(self) -> "UsageQuerySet":
        """Calls that were made (not those a budget refused beforehand)."""
        return self.exclude(error_code=REFUSED)


# The error code of a call stopped on purpose (Stop pressed, the run cancelled): its own outcome.
CANCELLED = "cancelled"
# The error code of a call a budget refused before it was made (listed with the calls, costs nothing).
REFUSED = "budget_exceeded"


class Usage(models.Model):
    """One model call: who asked, what was asked for and used, tokens, cost, timing and outcome."""

    class CostSource(models.TextChoices):
        USAGE = "usage", "the usage chunk"
        GENERATION = "generation", "the generation's stats"
        TOKENS = "tokens", "tokens × catalog price"
        RESERVATION = "reservation", "the reservation (no usage came)"
        NONE = "none", "nothing was spent"

    created_at = models.DateTimeField(default=timezone.now)
    session = models.CharField(max_length=100, blank=True, default="")
    run = models.CharField(max_length=100, blank=True, default="")
    mode = models.CharField(max_length=40)
    model_requested = models.CharField(max_length=200)
    model_used = models.CharField(max_length=200, blank=True, default="")
    provider = models.CharField(max_length=100, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    max_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(default=Decimal(0), **MONEY)
    cost_source = models.CharField(max_length=16, choices=CostSource.choices, default=CostSource.USAGE)
    reserved_usd = models.DecimalField(default=Decimal(0), **MONEY)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=40, blank=True, default="")
    native_finish_reason = models.CharField(max_length=60, blank=True, default="")
    generation_id = models.CharField(max_length=200, blank=True, default="")
    error_code = models.CharField(max_length=60, blank=True, default="")
    error = models.TextField(blank=True, default="")
    reason = models.TextField(blank=True, default="", help_text="Why this model was chosen.")

    objects = UsageQuerySet.as_manager()

    class Meta:
        db_table = "openrouter_usage"
        ordering = ["-created_at", "-id"]
        # The page and the API list the newest calls first.
        indexes = [models.Index(fields=["-created_at"], name="openrouter_usage_created_idx")]
        verbose_name_plural = "usage"

    def __str__(self) -> str:
        return f"{self.mode} → {self.model_used or self.model_requested}: ${self.cost_usd.normalize()}"

    @property
    def outcome(self) -> str:
        """``done``, ``cancelled`` (someone pressed Stop: counted, never a failure), ``refused`` (a budget
        said no before the call was made) or ``failed``."""
        if not self.error_code:
            return "done"
        return {CANCELLED: "cancelled", REFUSED: "refused"}.get(self.error_code, "failed")


class RoutingState(SingleRow):
    """One row: what the last key check and catalog sync found (shown on the page, never the key)."""

    key_checked_at = models.DateTimeField(null=True, blank=True)
    key_label = models.CharField(max_length=200, blank=True, default="")
    key_limit = models.DecimalField(null=True, blank=True, **MONEY)
    key_remaining = models.DecimalField(null=True, blank=True, **MONEY)
    key_usage = models.DecimalField(null=True, blank=True, **MONEY)
    key_error = models.CharField(max_length=300, blank=True, default="")
    models_synced_at = models.DateTimeField(null=True, blank=True)
    models_count = models.PositiveIntegerField(default=0)
    sync_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        db_table = "routing_state"

    def __str__(self) -> str:
        return "routing state"
