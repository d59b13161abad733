"""django-q2 entry points of the core app (thin: they call services)."""

import logging

from django_q.models import Schedule

from juggernaut import services
from juggernaut.schedules import Declared

log = logging.getLogger(__name__)


def events_prune() -> int:
    deleted = services.events_prune()
    log.info("pruned %d old events", deleted)
    return deleted


# What the jobs cluster runs on its own (synced by ``manage.py sync_schedules``).
SCHEDULES = [
    Declared("hq:events-prune", events_prune, Schedule.DAILY),
]
