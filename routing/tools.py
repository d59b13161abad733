"""Chat tools of routing: what the brain may ask about spend, budgets and policies (read-only, safe).

Plain typed functions with docstrings, marked by ``juggernaut.tools.tool``; the chat app builds their JSON
schemas.
"""

from juggernaut.tools import tool
from routing import live
from routing.models import CatalogModel, Policy


@tool(safe=True)
def spend_today() -> dict:
    """Today's (UTC) and this month's model spend in USD, with call counts and today's spend per mode."""
    s = live.spend()
    return {
        "today_usd": float(s["today"]),
        "today_calls": s["today_calls"],
        "today_failed_calls": s["today_errors"],
        "month_usd": float(s["month"]),
        "month_calls": s["month_calls"],
        "today_by_mode": {m["mode"]: float(m["value"]) for m in s["today_modes"]},
    }


@tool(safe=True)
def budgets() -> list[dict]:
    """Every budget: what it limits, its limit and soft limit in USD, what its current period spent and
    reserved, and its state (ok, warn past the soft limit, error when calls are refused)."""
    return [
        {
            "budget": row["budget"].label,
            "limit_usd": float(row["budget"].limit_usd),
            "soft_limit_usd": None
            if row["budget"].soft_limit_usd is None
            else float(row["budget"].soft_limit_usd),
            "spent_usd": float(row["spent"]),
            "reserved_usd": float(row["reserved"]),
            "state": row["state"],
            "summary": row["words"],
        }
        for row in live.budgets_status()
    ]


@tool(safe=True)
def policies() -> list[dict]:
    """Each mode's routing policy: model, fallbacks, price cap (USD per 1k tokens, prompt and completion
    each), context and iteration limits."""
    rows = list(Policy.objects.all())
    catalog = CatalogModel.objects.lookup(sorted({m for p in rows for m in p.candidates}))
    return [
        {
            "mode": p.mode,
            "model": p.model,
            "fallback_models": p.candidates[1:],
            "max_price_per_1k_usd": float(p.max_price_per_1k),
            "max_context_tokens": p.max_context_tokens,
            "max_iterations": p.max_iterations,
            "problems": p.problems(catalog),
        }
        for p in rows
    ]
