"""The django-q2 schedules: each app declares its own as ``SCHEDULES`` in its ``tasks.py`` (found by
``juggernaut.discovery``); ``manage.py sync_schedules`` makes the database match."""

from collections.abc import Callable
from dataclasses import dataclass, replace

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from juggernaut.discovery import app_modules


@dataclass(frozen=True)
class Declared:
    """One schedule: ``name`` (``hq:…``), the task function it runs, and when."""

    name: str
    task: Callable[..., object]
    schedule_type: str
    minutes: int | None = None
    cron: str | None = None
    minutes_setting: str | None = None  # the interval is this setting, read at sync; 0 switches it off

    @property
    def func(self) -> str:
        """The dotted path django-q2 stores and imports."""
        return f"{self.task.__module__}.{self.task.__qualname__}"


PREFIX = "hq:"


def declared() -> list[Declared]:
    """Every switched-on app's ``SCHEDULES`` (from its ``tasks.py``), in app order."""
    found = []
    for config, module in app_modules("tasks"):
        for d in getattr(module, "SCHEDULES", ()):
            if not d.name.startswith(PREFIX):
                raise ValueError(f"{config.label}: schedule {d.name!r} must be named {PREFIX}…")
            if d.minutes_setting:
                minutes = getattr(settings, d.minutes_setting)
                if minutes <= 0:
                    continue
                d = replace(d, minutes=minutes)
            found.append(d)
    return found


def schedules_sync() -> dict[str, list[str]]:
    """Upsert declared schedules by name (keeping their timers) and delete stale ones."""
    wanted = {d.name: d for d in declared()}
    result: dict[str, list[str]] = {"created": [], "updated": [], "deleted": [], "unchanged": []}
    for name, d in wanted.items():
        fields = {
            "func": d.func,
            "schedule_type": d.schedule_type,
            "minutes": d.minutes,
            "cron": d.cron,
            "repeats": -1,
        }
        current = Schedule.objects.filter(name=name).first()
        if current is None:
            Schedule.objects.create(name=name, next_run=timezone.now(), **fields)
            result["created"].append(name)
        elif any(getattr(current, k) != v for k, v in fields.items()):
            Schedule.objects.filter(pk=current.pk).update(**fields)
            result["updated"].append(name)
        else:
            result["unchanged"].append(name)
    # Only our own (prefixed) schedules are ours to delete; operators may add others in the admin.
    stale = Schedule.objects.filter(name__startswith=PREFIX).exclude(name__in=list(wanted))
    result["deleted"] = sorted(stale.values_list("name", flat=True))
    stale.delete()
    return result


def next_due() -> Schedule | None:
    """The declared schedule that fires next (None when none repeats: the jobs cluster has nothing to do)."""
    return (
        Schedule.objects.filter(name__startswith=PREFIX, next_run__isnull=False)
        .exclude(repeats=0)
        .order_by("next_run")
        .first()
    )
