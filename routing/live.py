"""The Routing & Costs page's read models and live fragments, and the Overview's routing line.

Each fragment is one top-level element with a stable id (``routing-meters``, ``routing-calls``…); the
HQ websocket sends them out-of-band after every routing event, and htmx swaps them in place.
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from juggernaut.areas import AreaStatus
from juggernaut.charts import Series, chart_build, chart_rows
from juggernaut.models import Event
from routing.models import (
    Budget,
    CatalogModel,
    CostTracking,
    Period,
    Policy,
    RoutingState,
    Usage,
    period_start,
    price_snapshot,
)
from routing.services import DEFAULT_BASE_URL, TOPIC, usd

FRAGMENTS = ["key", "summary", "meters", "charts", "sessions", "calls", "policies", "catalog"]
RECENT_CALLS = 20
TOP_SESSIONS = 8
CHART_DAYS = 14
NEARLY_USED_PCT = 90  # a budget without a soft limit warns from here


def key_state() -> dict:
    """Whether calls can be made, in words: no key, key refused, key fine (with its credit)."""
    state = RoutingState.load()
    custom = settings.OPENROUTER_BASE_URL.rstrip("/") != DEFAULT_BASE_URL
    base = {"row": state, "base_url": settings.OPENROUTER_BASE_URL}
    if not settings.OPENROUTER_API_KEY:
        if custom:
            return {
                "state": "ok",
                "text": f"No key set; calls go to {settings.OPENROUTER_BASE_URL}.",
                **base,
            }
        return {
            "state": "warn",
            "text": "No OpenRouter key: model calls are refused.",
            "action": "Set OPENROUTER_API_KEY in the environment and restart the HQ.",
            **base,
        }
    if state.key_error:
        return {
            "state": "error",
            "text": f"The key was refused: {state.key_error}",
            "action": "Check OPENROUTER_API_KEY, then press Check key.",
            **base,
        }
    if state.key_checked_at is None:
        return {"state": "ok", "text": "Key set; not checked yet.", **base}
    if state.key_remaining is not None and state.key_remaining <= 0:
        return {
            "state": "error",
            "text": "The key has no credit left.",
            "action": "Add credit on openrouter.ai.",
            **base,
        }
    credit = (
        f"{usd(state.key_remaining)} of {usd(state.key_limit)} credit left"
        if state.key_limit is not None
        else "no credit limit"
    )
    return {
        "state": "ok",
        # The key's label is a masked form of the key: it is not shown either.
        "text": f"Key set: {credit}; {usd(state.key_usage)} used.",
        **base,
    }


def _refusals_today(now) -> dict[str, dict]:
    """The latest refusal of each budget today (its label → what the call needed and what was left)."""
    latest: dict[str, dict] = {}
    for data, ts in (
        Event.objects.filter(topic=TOPIC, type="budget_refused", ts__date=now.date())
        .order_by("-seq")
        .values_list("data", "ts")[:50]
    ):
        if data.get("budget") and data["budget"] not in latest:
            latest[data["budget"]] = {
                "needed": Decimal(data.get("needed_usd") or 0),
                "left": Decimal(data.get("left_usd") or 0),
                "at": ts,
            }
    return latest


def budgets_status(now=None) -> list[dict]:
    """Each budget with what is spent and reserved in its current period, and its state in words."""
    now = now or timezone.now()
    budgets = list(Budget.objects.all())
    query = Q(pk__in=[])
    for b in budgets:
        query |= Q(period=b.period, period_start=period_start(b.period, now), mode=b.key[0], session=b.key[1])
    rows = {(r.period, r.mode, r.session): r for r in CostTracking.objects.filter(query)}
    refusals = _refusals_today(now)
    result = []
    for b in budgets:
        row = rows.get((b.period, *b.key))
        spent = row.cost_usd if row else Decimal(0)
        reserved = row.reserved_usd if row else Decimal(0)
        limit = b.limit_usd
        pct = float(spent / limit * 100) if limit else 100.0
        if limit == 0 or spent >= limit:
            state, words = (
                "error",
                "limit reached: calls are refused until the period ends or the limit is raised",
            )
        elif b.soft_limit_usd is not None and spent >= b.soft_limit_usd:
            state, words = "warn", f"past the soft limit of {usd(b.soft_limit_usd)}"
        elif b.soft_limit_usd is None and pct >= NEARLY_USED_PCT:
            state, words = "warn", f"only {usd(limit - spent - reserved)} left"
        else:
            state, words = "ok", f"{usd(limit - spent - reserved)} left"
        result.append(
            {
                "budget": b,
                "spent": spent,
                "reserved": reserved,
                "pct": round(min(pct, 100.0), 1),
                "reserved_pct": round(
                    min(float(reserved / limit * 100) if limit else 0.0, 100.0 - min(pct, 100.0)), 1
                ),
                "soft_pct": round(float(b.soft_limit_usd / limit * 100), 1)
                if b.soft_limit_usd is not None and limit
                else None,
                "state": state,
                "words": words,
                "text": f"{usd(spent)} spent"
                + (f" + {usd(reserved)} reserved" if reserved else "")
                + f" of {usd(limit)}",
                "refused": refusals.get(b.label),
            }
        )
    order = {"error": 0, "warn": 1, "ok": 2}
    return sorted(result, key=lambda r: (order[r["state"]], -r["pct"]))


def spend(now=None) -> dict:
    now = now or timezone.now()
    rows = CostTracking.objects.filter(session="")

    def total(period: str) -> CostTracking | None:
        return rows.filter(period=period, period_start=period_start(period, now), mode="").first()

    def per_mode(period: str) -> list[dict]:
        found = rows.filter(period=period, period_start=period_start(period, now)).exclude(mode="")
        return [{"mode": r.mode, "value": r.cost_usd, "calls": r.calls} for r in found.order_by("-cost_usd")]

    today, month = total(Period.DAY), total(Period.MONTH)
    return {
        "today": today.cost_usd if today else Decimal(0),
        "today_calls": today.calls if today else 0,
        "today_errors": today.errors if today else 0,
        "month": month.cost_usd if month else Decimal(0),
        "month_calls": month.calls if month else 0,
        "today_modes": per_mode(Period.DAY),
        "month_modes": per_mode(Period.MONTH),
    }


def daily(now=None, days: int = CHART_DAYS) -> list[dict]:
    now = now or timezone.now()
    first = now.date() - timedelta(days=days - 1)
    found = dict(
        CostTracking.objects.filter(
            period=Period.DAY, mode="", session="", period_start__gte=first
        ).values_list("period_start", "cost_usd")
    )
    return [
        {"label": f"{d:%d %b}", "value": found.get(d, Decimal(0))}
        for d in (first + timedelta(days=i) for i in range(days))
    ]


def _mode_items(modes: list[dict]) -> list[tuple[str, Decimal]]:
    return [(f"{m['mode']} ({m['calls']} call{'' if m['calls'] == 1 else 's'})", m["value"]) for m in modes]


def context(*, now=None) -> dict:
    now = now or timezone.now()
    s = spend(now)
    days = daily(now)
    state = RoutingState.load()
    policies = list(Policy.objects.all())
    catalog = CatalogModel.objects.lookup(sorted({m for p in policies for m in p.candidates}))
    return {
        "now": now,
        "key": key_state(),
        "spend": s,
        "budgets": budgets_status(now),
        "charts": [
            chart_rows("Today by mode", items=_mode_items(s["today_modes"]), unit="USD"),
            chart_rows("This month by mode", items=_mode_items(s["month_modes"]), unit="USD"),
            chart_build(
                f"Spend per UTC day, last {CHART_DAYS} days",
                labels=[d["label"] for d in days],
                series=[Series("spend", "USD", [float(d["value"]) for d in days])],
                height=180,
            ),
        ],
        "sessions": CostTracking.objects.filter(period=Period.TOTAL)
        .exclude(session="")
        .order_by("-cost_usd")[:TOP_SESSIONS],
        "calls": Usage.objects.all()[:RECENT_CALLS],
        "policies": [{"policy": p, "models": [catalog.get(m) or m for m in p.candidates]} for p in policies],
        "state": state,
        "catalog_count": CatalogModel.objects.count(),
        "catalog_models": [catalog[m] for m in sorted(catalog)],
        "snapshot_date": price_snapshot()["as_of"],
    }


def render_fragments(names: list[str] | None = None, *, oob: bool = True, ctx: dict | None = None) -> str:
    ctx = {**(ctx or context()), "oob": oob}
    return "".join(render_to_string(f"routing/_{name}.html", ctx) for name in names or FRAGMENTS)


def render_resync() -> str:
    return render_fragments()


def render_events(envelopes: list[dict]) -> str:
    """Every fragment once per batch of routing events (a call touches spend, meters, charts and calls)."""
    return render_fragments() if envelopes else ""


def routing_area_status(now=None) -> AreaStatus:
    """The Overview's routing line: key state, today's spend against the budget, thresholds crossed."""
    now = now or timezone.now()
    key = key_state()
    budgets = budgets_status(now)
    worst = next((b for b in budgets if b["state"] != "ok"), None)
    s = spend(now)
    daily_budget = next(
        (b for b in budgets if b["budget"].scope == "global" and b["budget"].period == Period.DAY), None
    )
    today = f"Today {usd(s['today'])}" + (
        f" of {usd(daily_budget['budget'].limit_usd)}" if daily_budget else ""
    )
    today += f" across {s['today_calls']} call{'' if s['today_calls'] == 1 else 's'}"
    if key["state"] != "ok":
        return AreaStatus(key["state"], f"{key['text']} {key.get('action', '')}".strip(), today + ".")
    if worst is not None:
        label = worst["budget"].label
        text = f"{label[0].upper()}{label[1:]}: {worst['text']}, {worst['words']}."
        others = sum(1 for b in budgets if b["state"] != "ok") - 1
        if others:
            text += (
                f" {others} more budget{'' if others == 1 else 's'} need{'s' if others == 1 else ''} a look."
            )
        return AreaStatus(worst["state"], text, f"{today}. {key['text']}")
    if s["today_errors"]:
        return AreaStatus(
            "warn", f"{today}; {s['today_errors']} failed.", "See the recent calls on the Routing page."
        )
    return AreaStatus("ok", f"{today}." + ("" if daily_budget else " No daily budget set."), key["text"])
