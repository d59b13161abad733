"""django-q2 entry points of the chat app (thin: they call services)."""

import logging

from django_q.models import Schedule

from chat import services
from juggernaut.schedules import Declared

log = logging.getLogger(__name__)


def run_execute(run_id: int) -> str:
    """A run, executed by the jobs cluster (``CHAT_RUNNER=jobs``)."""
    return services.run_execute_job(run_id)


def runs_sweep() -> int:
    """Close runs whose process died as ``interrupted``, retry or close runs nothing picked up (every minute)."""
    closed = services.runs_sweep()
    if closed:
        log.info("closed %d interrupted chat runs: %s", len(closed), closed)
    return len(closed)


# What the jobs cluster runs on its own (synced by ``manage.py sync_schedules``).
SCHEDULES = [
    Declared("hq:chat-sweep", runs_sweep, Schedule.MINUTES, minutes=1),
]
