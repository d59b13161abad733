"""django-q2 entry points of the engine (thin: they call services)."""

import logging
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django_q.models import Schedule

from juggernaut.engine import services
from juggernaut.schedules import Declared

log = logging.getLogger(__name__)

RUN_FOR_SECONDS = 55


def engine_tick() -> dict:
    """The autonomy loop: scheduled every minute, it ticks every ENGINE_TICK_SECONDS for about a minute.

    Overlapping runs (a slow minute, several clusters) are safe: every move in a tick is conditional.
    A tick that fails on the database (a server restart) is logged and the next one runs on a fresh
    connection, so an outage costs the ticks it lasts, never the rest of the minute.
    """
    started = time.monotonic()
    totals: dict[str, int] = {}
    ticks = 0
    while True:
        try:
            report = services.engine_tick()
        except DatabaseError as exc:
            log.warning("engine tick failed on the database (%s); the next one starts afresh", exc)
            connection.close()
            totals["failed"] = totals.get("failed", 0) + 1
        else:
            for key, value in report.as_dict().items():
                totals[key] = totals.get(key, 0) + value
        ticks += 1
        remaining = RUN_FOR_SECONDS - (time.monotonic() - started)
        if remaining < settings.ENGINE_TICK_SECONDS:
            break
        close_old_connections()
        time.sleep(settings.ENGINE_TICK_SECONDS)
    totals["ticks"] = ticks
    log.info("engine ticks: %s", totals)
    return totals


# What the jobs cluster runs on its own (synced by ``manage.py sync_schedules``).
SCHEDULES = [
    Declared("hq:engine-tick", engine_tick, Schedule.MINUTES, minutes=1),
]
