"""django-q2 entry points of routing (thin: they call services)."""

import logging

from django_q.models import Schedule

from juggernaut.schedules import Declared
from routing import services
from routing.errors import RoutingError

log = logging.getLogger(__name__)


def models_sync() -> dict:
    """Daily: refresh the model catalog and the key's credit (a dead API is logged, not raised)."""
    result: dict = {}
    try:
        result["models"] = services.catalog_sync()
    except RoutingError as exc:
        log.warning("model catalog sync failed: %s", exc.message)
        result["error"] = exc.message
    state = services.key_check()
    result["key_error"] = state.key_error
    return result


def reservations_expire() -> int:
    """Hourly: release budget held by calls whose process died before recording them."""
    return services.reservations_expire()


# What the jobs cluster runs on its own (synced by ``manage.py sync_schedules``).
SCHEDULES = [
    Declared("hq:routing-sync-models", models_sync, Schedule.DAILY),
    Declared("hq:routing-expire-reservations", reservations_expire, Schedule.HOURLY),
]
