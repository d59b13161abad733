"""The routing JSON API, mounted at ``/api/routing``: policies, the model catalog, usage, budgets, and a
routed completion for the Next.js frontend and external workers.

Scopes: ``read`` for listings, ``write`` for budgets and completions. A signed-in session has every scope;
global and per-mode budgets are an admin's.
"""

from decimal import Decimal

from ninja import Router, Status

from juggernaut.auth import require_scope
from juggernaut.openapi import refusals
from routing import live, schemas, services
from routing.errors import RoutingError
from routing.models import CatalogModel, Policy, Usage, price_snapshot

router = Router(tags=["routing"])


def _float(value) -> float | None:
    return None if value is None else float(value)


# Policies and budgets are answered from more than their row (the catalog a policy's problems are
# checked against, a budget's spend in its current period), so they keep an explicit mapping; a catalog
# model is its row, read by ``schemas.ModelOut``.
def policy_out(policy: Policy, catalog: dict) -> dict:
    return {
        **{
            f: getattr(policy, f)
            for f in [
                "mode",
                "model",
                "fallback_models",
                "max_context_tokens",
                "max_iterations",
                "max_output_tokens",
                "sort",
                "allow_fallbacks",
                "require_parameters",
            ]
        },
        "max_price_per_1k": float(policy.max_price_per_1k),
        "problems": policy.problems(catalog),
    }


def budget_out(row: dict) -> dict:
    b = row["budget"]
    return {
        "id": b.pk,
        "scope": b.scope,
        "mode": b.mode,
        "session": b.session,
        "period": b.period,
        "limit_usd": float(b.limit_usd),
        "soft_limit_usd": _float(b.soft_limit_usd),
        "spent_usd": float(row["spent"]),
        "reserved_usd": float(row["reserved"]),
        "state": row["state"],
    }


@router.get("/policies", response=list[schemas.PolicyOut])
def policies_list(request):
    """Every mode's policy, with the problems that would stop it (empty when usable)."""
    require_scope(request, "read")
    policies = list(Policy.objects.all())
    catalog = CatalogModel.objects.lookup(sorted({m for p in policies for m in p.candidates}))
    return [policy_out(p, catalog) for p in policies]


@router.get("/models", response=list[schemas.ModelOut])
def models_list(request):
    """The synced catalog; before the first sync, the bundled price snapshot of the policy models."""
    require_scope(request, "read")
    models = list(CatalogModel.objects.all())
    if not models:
        snapshot_ids = sorted(price_snapshot()["models"])
        models = list(CatalogModel.objects.lookup(snapshot_ids).values())
    return models


@router.get("/usage", response=list[schemas.UsageOut])
def usage_list(request, limit: int = 50, mode: str = "", session: str = ""):
    """Recorded calls, newest first (at most `limit`, up to 500), optionally of one mode or session."""
    require_scope(request, "read")
    if not 1 <= limit <= 500:
        raise RoutingError("bad_limit", "limit must be between 1 and 500", status=422)
    rows = Usage.objects.all()
    if mode:
        rows = rows.filter(mode=mode)
    if session:
        rows = rows.filter(session=session)
    return list(rows[:limit])


@router.get("/budgets", response=list[schemas.BudgetOut])
def budgets_list(request):
    """Every budget with what its current period has spent and reserved."""
    require_scope(request, "read")
    return [budget_out(row) for row in live.budgets_status()]


@router.post("/budgets", response={200: schemas.BudgetOut, 201: schemas.BudgetOut})
def budgets_set(request, payload: schemas.BudgetIn):
    """Create or update the budget of one scope and period (201 when created). Global and per-mode
    budgets are an admin's (403 `forbidden` for anyone else); a `session` budget is always of one of the
    caller's own sessions, stored as `<user name>/<session>`."""
    principal = require_scope(request, "write")
    soft = payload.soft_limit_usd
    budget, created = services.budget_set_by(
        principal.user,
        admin=principal.is_admin,
        scope=payload.scope,
        period=payload.period,
        mode=payload.mode or "",
        session=payload.session or "",
        limit_usd=Decimal(str(payload.limit_usd)),
        soft_limit_usd=None if soft is None else Decimal(str(soft)),
    )
    row = next(r for r in live.budgets_status() if r["budget"].pk == budget.pk)
    return Status(201 if created else 200, budget_out(row))


@router.post(
    "/complete",
    response=schemas.CompleteOut,
    openapi_extra=refusals(
        {
            402: "`budget_exceeded`: a budget of the mode, the session or the whole HQ would be overspent",
            502: "`model_error`: the provider failed; `details.retryable` says whether a retry may help",
        }
    ),
)
def complete(request, payload: schemas.CompletionIn):
    """A routed completion: the mode's policy picks the model, the budgets are reserved, the call is
    recorded. Refusals: `no_model_fits` (422), `budget_exceeded` (402), `model_error` (502, with
    `details.retryable`), `not_configured` (503, no key). A `session` is the caller's own: its usage
    and budget are recorded as `<user name>/<session>`."""
    principal = require_scope(request, "write")
    messages = [m.model_dump(exclude_none=True) for m in payload.messages]
    usage, completion = services.completion_run(
        payload.mode,
        messages,
        tools=payload.tools,
        tool_choice=payload.tool_choice,
        max_tokens=payload.max_tokens,
        session=services.session_of(principal.user, payload.session) if payload.session else "",
        run=payload.run,
    )
    return {
        "model": usage.model_used or usage.model_requested,
        "content": completion.content,
        "tool_calls": [c.as_dict() for c in completion.tool_calls],
        "finish_reason": completion.finish_reason,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": float(usage.cost_usd),
        },
        "usage_id": usage.pk,
        "generation_id": usage.generation_id,
    }
