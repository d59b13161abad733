"""The django-q2 schedules, declared once; ``manage.py sync_schedules`` makes the database match."""

from dataclasses import dataclass, replace

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule


@dataclass(frozen=True)
class Declared:
    name: str
    func: str
    schedule_type: str
    minutes: int | None = None
    cron: str | None = None
    enabled_setting: str | None = None  # a FEATURE_APPS key
    minutes_setting: str | None = None  # the interval is this setting, read at sync; 0 switches it off


PREFIX = "hq:"

SCHEDULES: list[Declared] = [
    Declared("hq:events-prune", "juggernaut.tasks.events_prune", Schedule.DAILY),
    Declared(
        "hq:engine-tick",
        "juggernaut.engine.tasks.engine_tick",
        Schedule.MINUTES,
        minutes=1,
        enabled_setting="engine",
    ),
    Declared("hq:chat-sweep", "chat.tasks.runs_sweep", Schedule.MINUTES, minutes=1, enabled_setting="chat"),
    Declared(
        "hq:routing-sync-models", "routing.tasks.models_sync", Schedule.DAILY, enabled_setting="routing"
    ),
    Declared(
        "hq:routing-expire-reservations",
        "routing.tasks.reservations_expire",
        Schedule.HOURLY,
        enabled_setting="routing",
    ),
    Declared(
        "hq:logs-crawl",
        "logscrawler.tasks.logs_crawl",
        Schedule.MINUTES,
        minutes=settings.LOGS_CRAWL_MINUTES,
        enabled_setting="logscrawler",
    ),
    Declared("hq:logs-prune", "logscrawler.tasks.logs_prune", Schedule.DAILY, enabled_setting="logscrawler"),
    Declared(
        "hq:selfheal-auto",
        "selfheal.tasks.auto_heal",
        Schedule.MINUTES,
        enabled_setting="selfheal",
        minutes_setting="SELFHEAL_AUTO_MINUTES",
    ),
    Declared(
        "hq:codehealth-scans", "codehealth.tasks.scans_due", Schedule.HOURLY, enabled_setting="codehealth"
    ),
    Declared(
        "hq:codehealth-weekly-report",
        "codehealth.tasks.reports_weekly",
        Schedule.WEEKLY,
        enabled_setting="codehealth",
    ),
]


def declared() -> list[Declared]:
    found = []
    for d in SCHEDULES:
        if d.enabled_setting and not settings.FEATURE_APPS.get(d.enabled_setting, True):
            continue
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
