"""django-q2 entry points (thin: they call services)."""

from django_q.models import Schedule

from juggernaut.schedules import Declared
from selfheal import services


def auto_heal() -> int:
    return services.auto_heal_run().pk


def executions_sweep() -> int:
    """Close, as failed, diagnoses and repairs whose process died (every minute)."""
    return len(services.executions_take_over())


# What the jobs cluster runs on its own (synced by ``manage.py sync_schedules``).
SCHEDULES = [
    Declared("hq:selfheal-sweep", executions_sweep, Schedule.MINUTES, minutes=1),
    Declared("hq:selfheal-auto", auto_heal, Schedule.MINUTES, minutes_setting="SELFHEAL_AUTO_MINUTES"),
]
