"""The self-heal JSON API, mounted at ``/api/self-heal``. Scopes: ``read`` to list, ``write`` to run."""

from ninja import Router

from juggernaut.auth import actor_of, require_scope
from juggernaut.openapi import refusals
from juggernaut.schemas import DbId
from selfheal import services
from selfheal.schemas import DiagnosisOut, ExecutionOut, RepairIn

PREFIX = "/self-heal"
router = Router(tags=["self-heal"])


def _actor(request) -> str:
    return actor_of(request.auth.user, request.auth.token)


@router.post("/diagnose", response=DiagnosisOut)
def diagnose(request):
    """Run every check concurrently (each with its own timeout); the report inline."""
    require_scope(request, "write")
    return services.diagnose_run(trigger="api", actor=_actor(request))


@router.post("/repair", response=ExecutionOut)
def repair(request, payload: RepairIn):
    """Run the safe actions the findings name (or ``actions``), then verify; ``dry_run`` changes nothing."""
    require_scope(request, "write")
    return services.repair_run(
        actions=payload.actions, dry_run=payload.dry_run, trigger="api", actor=_actor(request)
    )


@router.post(
    "/auto-heal",
    response=ExecutionOut,
    openapi_extra=refusals({429: "`rate_limited`: this operator's manual runs of the hour are used up"}),
)
def auto_heal(request):
    """One auto-heal run now: auto-safe actions only, behind the circuit breakers. Each operator may ask
    for SELFHEAL_MANUAL_RUNS_PER_HOUR runs an hour (429 `rate_limited` past that); asking never opens
    the breaker that guards the schedule."""
    principal = require_scope(request, "write")
    services.auto_heal_manual_check(principal.user)
    return services.repair_run(trigger="api", actor=_actor(request), auto=True)


@router.get("/executions", response=list[ExecutionOut])
def executions(request):
    """Every run, newest first (the latest 50)."""
    require_scope(request, "read")
    return services.executions_list()


@router.get("/executions/{execution_id}", response=ExecutionOut)
def execution(request, execution_id: DbId):
    require_scope(request, "read")
    return services.execution_get(execution_id)
