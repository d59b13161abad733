"""Routing workflows: pick a model for a mode, reserve its worst case against the budgets, call it, and
record what it really cost.

Spend and reservations live on ``cost_tracking`` rollup rows (all calls, the mode, the session; per
day, month and in total). A reservation locks the rows its call touches (``SELECT … FOR UPDATE`` on
Postgres; SQLite's IMMEDIATE transactions take the database's write lock), checks every budget against
``cost + reserved + worst case``, and adds the worst case to ``reserved``; recording the call moves it
from ``reserved`` to ``cost`` under the same locks. So no budget is overspent, however many calls run
at once, as long as no call costs more than its worst case (see ``prompt_token_bounds``).
"""

from routing.errors import RoutingError
from routing.models import price_snapshot
from routing.services.budgets import (
    budget_reserve,
    budget_set,
    budget_set_by,
    reservations_expire,
    session_of,
    usage_event,
    usage_record,
)
from routing.services.calls import catalog_sync, completion_run, key_check, key_required, policy_update
from routing.services.selection import (
    DEFAULT_BASE_URL,
    TOPIC,
    Selection,
    policy_get,
    prompt_token_bounds,
    route_select,
    usd,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "TOPIC",
    "RoutingError",
    "Selection",
    "budget_reserve",
    "budget_set",
    "budget_set_by",
    "catalog_sync",
    "completion_run",
    "key_check",
    "key_required",
    "policy_get",
    "policy_update",
    "price_snapshot",
    "prompt_token_bounds",
    "reservations_expire",
    "route_select",
    "session_of",
    "usage_event",
    "usage_record",
    "usd",
]
