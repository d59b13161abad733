"""Routing's self-heal checks: the OpenRouter key and credit (at OPENROUTER_BASE_URL), and the budgets."""

from datetime import datetime

from django.conf import settings

from juggernaut.healing import Finding, Fix, check
from routing import live
from routing.clients import OpenRouterClient, OpenRouterError


@check("openrouter")
def openrouter_check(now: datetime) -> list[Finding]:
    """The OpenRouter key valid and with credit left, asked at its configured base URL."""
    base = settings.OPENROUTER_BASE_URL
    if not settings.OPENROUTER_API_KEY:
        return [
            Finding(
                "openrouter",
                "warning",
                "No OpenRouter key: model calls are refused.",
                {"base_url": base},
                Fix.manual("OPENROUTER_API_KEY", "Set it and restart the HQ."),
                code="no_key",
            )
        ]
    timeout = settings.SELFHEAL_CHECK_TIMEOUT_SECONDS
    try:
        info = OpenRouterClient(connect_timeout=timeout, idle_timeout=timeout, max_retries=0).key()
    except OpenRouterError as exc:
        refused = getattr(exc, "status", None) in (401, 403)
        title = "The OpenRouter key is invalid" if refused else f"OpenRouter is unreachable at {base}"
        return [
            Finding(
                "openrouter",
                "critical",
                f"{title}: {getattr(exc, 'message', exc)}",
                {"base_url": base, "status": getattr(exc, "status", None)},
                Fix.manual(
                    "OPENROUTER_API_KEY" if refused else "OPENROUTER_BASE_URL",
                    "Check the key and the URL, then press Check key on /routing/.",
                ),
                code="invalid_key" if refused else "unreachable",
            )
        ]
    if info.remaining is not None and info.remaining <= 0:
        return [
            Finding(
                "openrouter",
                "critical",
                "The OpenRouter key has no credit left.",
                {"remaining": 0},
                Fix.manual("https://openrouter.ai/settings/credits", "Add credit."),
                code="no_credit",
            )
        ]
    return []


@check("budgets")
def budgets_check(now: datetime) -> list[Finding]:
    """Spend against every budget's limits in its current period."""
    found = []
    for row in live.budgets_status(now):
        if row["state"] == "ok":
            continue
        b = row["budget"]
        severity = "critical" if row["state"] == "error" else "warning"
        found.append(
            Finding(
                "budgets",
                severity,
                f"The {b.label} is at {row['text']}: {row['words']}.",
                {"spent": str(row["spent"]), "limit": str(b.limit_usd), "pct": row["pct"]},
                Fix.manual("/routing/", "Raise the limit or wait for the period to end."),
                code=f"budget:{b.pk}",
            )
        )
    return found
