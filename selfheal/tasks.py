"""django-q2 entry points (thin: they call services)."""

from django_q.models import Schedule

from juggernaut.schedules import Declared
from selfheal import services


def auto_heal() -> int:
    return services.auto_heal_run().pk


# What the jobs cluster runs on its own (synced by ``manage.py sync_schedules``).
SCHEDULES = [
    Declared("hq:selfheal-auto", auto_heal, Schedule.MINUTES, minutes_setting="SELFHEAL_AUTO_MINUTES"),
]
