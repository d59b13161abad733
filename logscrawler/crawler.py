"""The crawl cycle: Railway → records → ``logs_ingest``, one page at a time, never losing a line.

Each page of one stream is stored in the same transaction that moves the stream's cursor, so a crash
mid-cycle resumes from the last stored page and duplicates nothing (the rows of a page fetched twice
are the same rows, deduplicated by their source id). Each cycle spends at most its share of the
plan's hourly request budget; only one cycle runs at a time, however many job clusters there are.
"""

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from juggernaut.events import publish
from logscrawler.alerts import alert_open
from logscrawler.clients import HttpRow, LogRow, RailwayClient, RailwayError
from logscrawler.models import AlertRule, CrawlCursor, CrawlRun, LogService
from logscrawler.services import IngestResult, Record, logs_ingest, open_event_start

log = logging.getLogger(__name__)

# Errors and warnings from every service's own log lines; HTTP answers come through httpLogs. Railway
# writes its "rate limit of 500 logs/sec reached ... Messages dropped: N" notice into the stream itself,
# at a level it does not document (info in what we have seen): the text term keeps it in.
LOG_FILTER = '@level:error OR @level:warn OR "Messages dropped"'
FIRST_LOOKBACK = timedelta(hours=1)
DISCOVERY_EVERY = timedelta(hours=1)
FAILED_DEPLOYMENTS = {"FAILED", "CRASHED"}
# Lines of one stream sharing one instant that a single request reads (see ``_paged``).
INSTANT_ROWS = 5000
# The lines of one event (a stack trace) are written together: a longer silence ends it.
EVENT_GAP = timedelta(seconds=1)


def cycle_budget() -> int:
    """Requests one cycle may send: its share of the hourly limit, with a little kept in reserve."""
    share = settings.LOGS_RAILWAY_HOURLY_REQUESTS * settings.LOGS_CRAWL_MINUTES / 60
    return max(1, int(share * 0.9))


class CrawlLeaseLost(Exception):
    """Another cycle took this one's run over (it looked dead): stop without writing anything more."""


class Lease:
    """A running cycle's hold on its run: ``beat()`` before every request proves it alive. The clock
    is the cycle's ``now`` moved on by the time that really passed, so an injected ``now`` holds."""

    def __init__(self, run: CrawlRun, now: datetime) -> None:
        self.run, self.now, self.started = run, now, time.monotonic()

    def clock(self) -> datetime:
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    def beat(self) -> None:
        beat = self.clock()
        if (
            CrawlRun.objects.filter(pk=self.run.pk, status=CrawlRun.Status.RUNNING).update(heartbeat_at=beat)
            != 1
        ):
            raise CrawlLeaseLost(f"crawl {self.run.pk} was taken over by another cycle")
        self.run.heartbeat_at = beat


def runs_take_over(now: datetime) -> list[int]:
    """Close, as failed, running cycles whose heartbeat is older than the lease: their process died
    (killed, machine gone). Returns their ids."""
    cutoff = now - timedelta(seconds=settings.LOGS_CRAWL_LEASE_SECONDS)
    dead = list(
        CrawlRun.objects.filter(status=CrawlRun.Status.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "pk", "heartbeat_at"
        )
    )
    closed = []
    for run_id, beat in dead:
        age = int((now - beat).total_seconds())
        error = (
            f"the crawl stopped sending heartbeats {age} s ago (its process died or was killed); taken over"
        )
        # Re-checked in the update: a cycle that beat since is alive and keeps its run.
        if CrawlRun.objects.filter(pk=run_id, status=CrawlRun.Status.RUNNING, heartbeat_at=beat).update(
            status=CrawlRun.Status.FAILED, finished_at=now, errors=[error]
        ):
            log.warning("crawl %s: %s", run_id, error)
            closed.append(run_id)
    return closed


def _run_open(now: datetime) -> CrawlRun | None:
    runs_take_over(now)
    try:
        with transaction.atomic():
            return CrawlRun.objects.create(started_at=now, heartbeat_at=now, budget=cycle_budget())
    except IntegrityError:
        return None  # another cluster is crawling


def crawl_run(*, client: RailwayClient | None = None, now: datetime | None = None) -> CrawlRun | None:
    """One crawl cycle; None when another cycle is already running (and alive: one whose heartbeat
    stopped is closed as failed and this cycle takes over). CrawlLeaseLost when this cycle was itself
    taken over meanwhile."""
    now = now or timezone.now()
    client = client or RailwayClient()
    client.budget = cycle_budget()
    run = _run_open(now)
    if run is None:
        return None
    client.before_request = Lease(run, now).beat
    if not client.configured:
        run.status, run.errors = (
            CrawlRun.Status.SKIPPED,
            ["no Railway token: set RAILWAY_TOKEN or RAILWAY_API_TOKEN"],
        )
        return _run_close(run, client, now)
    try:
        environments = _discover(client, now)
        for environment_id in environments:
            _crawl_environment(run, client, environment_id, now)
        for service in LogService.objects.exclude(railway_deployment_id=""):
            _crawl_http(run, client, service, now)
    except RailwayError as exc:
        run.errors.append(str(exc))
    if run.errors:
        run.status = (
            CrawlRun.Status.FAILED
            if run.lines == 0 and client.rate_limit.requests <= 1
            else CrawlRun.Status.PARTIAL
        )
    else:
        run.status = CrawlRun.Status.OK
    return _run_close(run, client, now)


def _run_close(run: CrawlRun, client: RailwayClient, now: datetime) -> CrawlRun:
    run.finished_at = max(now, timezone.now())
    run.requests = client.rate_limit.requests
    run.rate_limit_remaining = client.rate_limit.remaining
    with transaction.atomic():
        # Fenced like every beat: a cycle taken over for dead must not rewrite its successor's verdict.
        if (
            not CrawlRun.objects.select_for_update()
            .filter(pk=run.pk, status=CrawlRun.Status.RUNNING)
            .exists()
        ):
            raise CrawlLeaseLost(f"crawl {run.pk} was taken over by another cycle")
        run.save()
    publish(
        "logs",
        "crawl_finished",
        {
            "run_id": run.pk,
            "status": run.status,
            "lines": run.lines,
            "requests": run.requests,
            "errors": run.errors[:5],
        },
    )
    return run


def _discover(client: RailwayClient, now: datetime, *, force: bool = False) -> list[str]:
    """Environment ids to crawl; services are (re)read from Railway at most hourly, unless ``force``."""
    known = LogService.objects.exclude(railway_environment_id="")
    recent = CrawlRun.objects.filter(
        started_at__gte=now - DISCOVERY_EVERY, status__in=["ok", "partial"]
    ).exists()
    if known.exists() and recent and not force:
        return sorted(set(known.values_list("railway_environment_id", flat=True)))
    environments = []
    for project in client.projects():
        for environment_id, environment in project.environments.items():
            environments.append(environment_id)
            for service_id, name in project.services.items():
                label = name if len(project.environments) == 1 else f"{name} ({environment})"
                service, created = LogService.objects.update_or_create(
                    railway_service_id=service_id,
                    railway_environment_id=environment_id,
                    defaults={"name": label[:120], "railway_project_id": project.id},
                )
                if created or not force:  # a forced refresh is for new services: spend nothing on the rest
                    _deployment_track(client, service, now)
    return environments


def _deployment_track(client: RailwayClient, service: LogService, now: datetime) -> None:
    """Remember the latest deployment; backfill the logs of a failed one, once."""
    deployments = client.deployments(
        project_id=service.railway_project_id,
        environment_id=service.railway_environment_id,
        service_id=service.railway_service_id,
        first=1,
    )
    if not deployments:
        return
    latest = deployments[0]
    service.railway_deployment_id = str(latest.get("id") or "")
    if (
        latest.get("status") in FAILED_DEPLOYMENTS
        and service.backfilled_deployment_id != service.railway_deployment_id
    ):
        rows = client.build_logs(service.railway_deployment_id, limit=settings.LOGS_CRAWL_PAGE)
        rows += client.deployment_logs(service.railway_deployment_id, limit=settings.LOGS_CRAWL_PAGE)
        with transaction.atomic():
            records = [_record(row) for row in rows if not row.is_drop_notice]
            if records:
                logs_ingest(service, records, now=now)
            service.backfilled_deployment_id = service.railway_deployment_id
            service.save(update_fields=["railway_deployment_id", "backfilled_deployment_id"])
        return
    service.save(update_fields=["railway_deployment_id"])


def _record(row: LogRow) -> Record:
    return Record(
        timestamp=row.timestamp,
        message=row.message,
        severity=row.severity,
        attributes=row.attributes,
        source_id=row.source_id,
    )


def _paged(
    fetch: Callable[..., list],
    run: CrawlRun,
    stream: str,
    position: datetime,
    now: datetime,
    hold_back: Callable[[list], datetime] | None = None,
) -> Iterator[tuple[list, datetime]]:
    """The pages of one stream from ``position`` to ``now``, each with the cursor to keep once it is stored.

    Railway pages by time alone (an inclusive anchor, no offset), so each page starts with the last row
    of the one before. A full page of rows that all share one instant cannot move the anchor: that
    instant is then read whole in one larger request, and the cursor steps just past it. With
    ``hold_back`` (the instant of the rows the next page may continue), a full page keeps those rows
    for the next one, so a stack trace across two pages is stored as one event; a page that is all one
    event is read again, larger, until the event ends in it.
    """
    page = settings.LOGS_CRAWL_PAGE
    size = page
    while True:
        rows = fetch(after=position, until=now, limit=size)
        if not rows:
            return
        last = rows[-1].timestamp
        if len(rows) < size:
            yield rows, last
            return
        if last > position:
            cut = hold_back(rows) if hold_back else last
            if hold_back and cut == position and size < INSTANT_ROWS:
                size = min(size * 2, INSTANT_ROWS)  # one event fills the page: read more of it at once
                continue
            if hold_back and position < cut <= last:
                kept = [row for row in rows if row.timestamp < cut]
                if kept:  # else the open event began the page, after the anchor: re-read from it
                    yield kept, cut
            else:  # nothing held back, or one event fills even the largest page: it cannot wait
                yield rows, last
                cut = last
            position, size = cut, page
            continue
        rows = fetch(after=position, until=position, limit=max(INSTANT_ROWS, page))
        if len(rows) >= INSTANT_ROWS:
            run.errors.append(
                f"{stream}: more than {INSTANT_ROWS} lines at {position.isoformat()}; "
                f"only the first {INSTANT_ROWS} were read"
            )
        position += timedelta(microseconds=1)
        yield rows, position


def _crawl_environment(run: CrawlRun, client: RailwayClient, environment_id: str, now: datetime) -> None:
    stream = f"env:{environment_id}"
    cursor = CrawlCursor.objects.filter(stream=stream).first()
    position = cursor.position if cursor else now - FIRST_LOOKBACK
    run.window_start = min(run.window_start or position, position)
    services = {
        s.railway_service_id: s for s in LogService.objects.filter(railway_environment_id=environment_id)
    }

    def fetch(**window) -> list[LogRow]:
        return client.environment_logs(environment_id, filter=LOG_FILTER, **window)

    try:
        for rows, kept in _paged(fetch, run, stream, position, now, hold_back=_open_events_at):
            if any(row.service_id not in services for row in rows):
                services = _services_refresh(client, environment_id, rows, services, now)
            with transaction.atomic():
                result = _store_page(services, rows, now)
                CrawlCursor.objects.update_or_create(stream=stream, defaults={"position": kept})
            run.lines += result.accepted
            run.new_fingerprints += len(result.new_fingerprints)
            run.window_end = max(run.window_end or rows[-1].timestamp, rows[-1].timestamp)
    except RailwayError as exc:
        run.errors.append(f"{environment_id}: {exc}")


def _open_events_at(rows: list[LogRow]) -> datetime:
    """When the earliest event the next page may still continue began, over the page's services.

    A service silent for a while before the page's end has finished its last event (a program writes
    the lines of one trace together): it holds nothing back.
    """
    end = rows[-1].timestamp
    by_service: dict[str, list[LogRow]] = {}
    for row in rows:
        by_service.setdefault(row.service_id, []).append(row)
    starts = [
        lines[open_event_start([_record(row) for row in lines])].timestamp
        for lines in by_service.values()
        if end - lines[-1].timestamp <= EVENT_GAP
    ]
    return min(starts, default=end)


def _services_refresh(
    client: RailwayClient,
    environment_id: str,
    rows: list[LogRow],
    services: dict[str, LogService],
    now: datetime,
) -> dict[str, LogService]:
    """Services of the environment, with those created since discovery that ``rows`` name.

    Railway is asked once for their names; should it not answer, they are stored under their id (the
    next discovery renames them), so their lines are never skipped while the cursor moves past them.
    """
    try:
        _discover(client, now, force=True)
    except RailwayError as exc:
        log.warning("could not name new Railway services: %s", exc)
    services = {
        s.railway_service_id: s for s in LogService.objects.filter(railway_environment_id=environment_id)
    }
    for service_id in {row.service_id for row in rows} - set(services):
        services[service_id], _ = LogService.objects.get_or_create(
            railway_service_id=service_id,
            railway_environment_id=environment_id,
            defaults={"name": f"Railway service {service_id or 'without an id'}"[:120]},
        )
    return services


def _store_page(services: dict[str, LogService], rows: list[LogRow], now: datetime) -> IngestResult:
    total = IngestResult()
    by_service: dict[str, list[Record]] = {}
    for row in rows:
        service = services[row.service_id]
        if row.is_drop_notice:
            alert_open(AlertRule.LOGS_DROPPED, service, row.message[:300], now=now)
            continue
        by_service.setdefault(row.service_id, []).append(_record(row))
    for service_id, records in by_service.items():
        result = logs_ingest(services[service_id], records, now=now)
        total.accepted += result.accepted
        total.duplicates += result.duplicates
        total.new_fingerprints += result.new_fingerprints
    return total


def _crawl_http(run: CrawlRun, client: RailwayClient, service: LogService, now: datetime) -> None:
    """HTTP answers of the service's latest deployment, page after page within the cycle's budget: 5xx
    become errors, and every answer counts towards the sustained-5xx share."""
    stream = f"http:{service.railway_deployment_id}"
    cursor = CrawlCursor.objects.filter(stream=stream).first()
    position = cursor.position if cursor else now - FIRST_LOOKBACK

    def fetch(**window) -> list[HttpRow]:
        return client.http_logs(service.railway_deployment_id, **window)

    try:
        for rows, kept in _paged(fetch, run, stream, position, now):
            records = [
                Record(
                    timestamp=row.timestamp,
                    message=f"{row.method} {row.path} {row.status}",
                    severity="error" if row.status >= 500 else "info",
                    attributes={
                        "httpStatus": row.status,
                        "requestId": row.request_id,
                        "durationMs": row.duration_ms,
                    },
                    source_id=f"http:{row.request_id}" if row.request_id else "",
                )
                for row in rows
            ]
            with transaction.atomic():
                result = logs_ingest(service, records, now=now)
                CrawlCursor.objects.update_or_create(stream=stream, defaults={"position": kept})
            run.lines += result.accepted
            run.new_fingerprints += len(result.new_fingerprints)
    except RailwayError as exc:
        run.errors.append(f"{service.name} HTTP logs: {exc}")
