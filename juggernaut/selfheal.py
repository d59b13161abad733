"""The core's self-heal checks (database, jobs cluster and schedules) and actions."""

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.executor import MigrationExecutor
from django_q.models import Schedule

from juggernaut import schedules, services
from juggernaut.healing import Finding, Fix, Outcome, action, check
from juggernaut.models import Event
from juggernaut.timefmt import duration_text

SLOW_QUERY_MS = 200
# A schedule this late means no jobs cluster is picking it up.
OVERDUE = timedelta(minutes=3)
INTERVALS = {Schedule.MINUTES: None, Schedule.HOURLY: 60, Schedule.DAILY: 1440}


def _stopped_schedules() -> list[str]:
    """Declared schedules missing from the database or no longer repeating."""
    rows = {s.name: s for s in Schedule.objects.filter(name__startswith=schedules.PREFIX)}
    return [d.name for d in schedules.declared() if d.name not in rows or rows[d.name].repeats == 0]


@check("database")
def database_check(now: datetime) -> list[Finding]:
    """Query latency, connections in use, pending migrations and the event-log backlog."""
    found: list[Finding] = []
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    latency = (time.monotonic() - started) * 1000
    if latency > SLOW_QUERY_MS:
        found.append(
            Finding(
                "database",
                "warning",
                f"The database answers slowly ({latency:.0f} ms).",
                {"latency_ms": round(latency, 1)},
                Fix.manual("DATABASE_URL", "Check the database server's load."),
                code="slow",
            )
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity")
            used, limit = cursor.fetchone()
        if used > 0.8 * limit:
            found.append(
                Finding(
                    "database",
                    "warning",
                    f"{used} of {limit} database connections in use.",
                    {"used": used, "max": limit},
                    Fix.manual("DB_POOL_MAX_SIZE", "Lower the pool size or raise max_connections."),
                    code="connections",
                )
            )
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        found.append(
            Finding(
                "database",
                "critical",
                f"{len(pending)} migration(s) not applied.",
                {"pending": [f"{m.app_label}.{m.name}" for m, _ in pending][:10]},
                Fix.manual("manage.py migrate", "Apply the migrations."),
                code="migrations",
            )
        )
    backlog = Event.objects.count()
    if backlog > settings.SELFHEAL_EVENT_BACKLOG:
        found.append(
            Finding(
                "database",
                "warning",
                f"The event log holds {backlog} events.",
                {"events": backlog, "limit": settings.SELFHEAL_EVENT_BACKLOG},
                Fix.safe("prune_events", "Delete events past the retention window."),
                code="event_backlog",
            )
        )
    return found


@check("jobs")
def jobs_check(now: datetime) -> list[Finding]:
    """The jobs cluster alive (its schedules firing on time) and every declared schedule in place."""
    found: list[Finding] = []
    late = [
        (s.name, now - s.next_run)
        for s in Schedule.objects.filter(name__startswith=schedules.PREFIX).exclude(repeats=0)
        if s.next_run and now - s.next_run > OVERDUE
    ]
    if late:
        name, by = max(late, key=lambda pair: pair[1])
        found.append(
            Finding(
                "jobs",
                "critical",
                f"The jobs cluster is not running: {name} is {duration_text(by)} overdue.",
                {"overdue": {n: int(d.total_seconds()) for n, d in late}},
                Fix.manual("manage.py qcluster", "Start the jobs process."),
                code="cluster",
            )
        )
    stopped = _stopped_schedules()
    if stopped:
        found.append(
            Finding(
                "jobs",
                "warning",
                f"{len(stopped)} schedule(s) stopped: {', '.join(stopped)}.",
                {"schedules": stopped},
                Fix.safe("restart_schedules", "Put the declared schedules back."),
                code="stopped",
            )
        )
    return found


@action(
    "prune_events", touches="events", cap=1_000_000, reversible=False, auto=True, label="Prune old events"
)
def prune_events(*, dry_run: bool, cap: int, now: datetime) -> Outcome:
    """Delete events older than EVENTS_RETENTION_DAYS (topics still on screen are kept)."""
    cutoff = now - timedelta(days=settings.EVENTS_RETENTION_DAYS)
    old = Event.objects.filter(ts__lt=cutoff).count()
    if dry_run:
        return Outcome(min(old, cap), f"would delete {old} event(s) older than {cutoff:%Y-%m-%d}")
    deleted = services.events_prune()
    return Outcome(deleted, f"deleted {deleted} event(s)", fixed=deleted > 0 or old == 0)


@action(
    "restart_schedules",
    touches="django_q_schedule",
    cap=20,
    reversible=True,
    auto=True,
    label="Restart stopped schedules",
)
def restart_schedules(*, dry_run: bool, cap: int, now: datetime) -> Outcome:
    """Recreate missing declared schedules and make stopped ones repeat again."""
    stopped = _stopped_schedules()[:cap]
    changes = [f"schedule {name}: stopped → repeating" for name in stopped]
    if dry_run:
        return Outcome(len(stopped), f"would restart {len(stopped)} schedule(s)", changes)
    result = schedules.schedules_sync()
    return Outcome(
        len(result["created"]) + len(result["updated"]), f"restarted {', '.join(stopped) or 'none'}", changes
    )
