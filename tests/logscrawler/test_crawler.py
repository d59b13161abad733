"""The Railway client and the crawl cycle against the fake Railway server, quirks included."""

from datetime import timedelta

import pytest

from logscrawler import crawler
from logscrawler.clients import RailwayError
from logscrawler.models import (
    AlertRule,
    CrawlCursor,
    CrawlRun,
    ErrorFingerprint,
    LogAlert,
    LogLine,
    LogService,
)
from tests.logscrawler.crawling import NOW, client_for, errors


def test_it_sends_the_project_token_and_reads_the_rate_limit_headers(fake):
    client = client_for(fake)
    [project] = client.projects()
    assert project.services == {"svc-api": "api", "svc-worker": "worker"}
    assert fake.requests == ["Projects"]
    assert (client.rate_limit.limit, client.rate_limit.remaining) == (1000, 999)


def test_it_turns_an_html_403_into_a_permanent_error(fake):
    with pytest.raises(RailwayError) as caught:
        client_for(fake, token="wrong").projects()
    assert caught.value.permanent and caught.value.status == 403


def test_it_raises_graphql_errors_that_come_with_http_200(fake):
    fake.fail_next("Problem processing request")
    with pytest.raises(RailwayError, match="Problem processing request") as caught:
        client_for(fake).projects()
    assert not caught.value.permanent


def test_it_waits_out_a_429_with_retry_after_then_gives_up(fake):
    fake.hourly_limit = 1
    client = client_for(fake, retries=2)
    client.projects()
    with pytest.raises(RailwayError, match="rate limit"):
        client.projects()
    assert fake.requests == ["Projects"] * 4  # one allowed, then the first try and two retries of the second
    assert client.rate_limit.requests == 4  # the session's retries count as requests sent


def test_it_keeps_limit_rows_of_the_limit_plus_one_oldest_first(fake):
    errors(fake, 5, NOW)
    rows = client_for(fake).environment_logs("env-prod", after=NOW, until=NOW + timedelta(hours=1), limit=3)
    assert [r.message for r in rows] == [f"charge {n} failed: card declined" for n in range(3)]


def test_it_crawls_errors_into_fingerprints_and_resumes_without_loss_or_duplicates(fake, db, settings):
    settings.LOGS_CRAWL_PAGE = 4
    errors(fake, 10, NOW - timedelta(minutes=30))
    run = crawler.crawl_run(client=client_for(fake), now=NOW)
    assert run.status == CrawlRun.Status.OK, run.errors
    assert LogLine.objects.count() == 10 and run.lines == 10
    fp = ErrorFingerprint.objects.get()
    assert fp.count == 10 and fp.service.name == "api"
    # more lines arrive; the next cycle starts from the cursor and stores each line once
    errors(fake, 3, NOW + timedelta(minutes=1), message="refund {n} failed: timeout")
    second = crawler.crawl_run(client=client_for(fake), now=NOW + timedelta(minutes=5))
    assert LogLine.objects.count() == 13 and second.lines == 3
    assert CrawlCursor.objects.get(stream="env:env-prod").position == NOW + timedelta(minutes=1, seconds=2)


def test_it_loses_nothing_when_a_cycle_dies_mid_crawl(fake, db, settings, monkeypatch):
    settings.LOGS_CRAWL_PAGE = 4
    errors(fake, 10, NOW - timedelta(minutes=30))
    real = crawler._store_page
    pages = []

    def dies_on_the_second_page(*args, **kwargs):
        pages.append(1)
        if len(pages) == 2:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(crawler, "_store_page", dies_on_the_second_page)
    with pytest.raises(RuntimeError):
        crawler.crawl_run(client=client_for(fake), now=NOW)
    assert LogLine.objects.count() == 3  # the first page, with its cursor (its last line waits for the next)
    monkeypatch.setattr(crawler, "_store_page", real)
    crawler.crawl_run(client=client_for(fake), now=NOW + timedelta(minutes=5))
    assert LogLine.objects.count() == 10
    assert ErrorFingerprint.objects.get().count == 10


def test_it_spends_no_more_than_its_share_of_the_hourly_budget(fake, db, settings):
    settings.LOGS_RAILWAY_HOURLY_REQUESTS, settings.LOGS_CRAWL_MINUTES, settings.LOGS_CRAWL_PAGE = 96, 5, 2
    errors(fake, 20, NOW - timedelta(minutes=30))
    run = crawler.crawl_run(client=client_for(fake), now=NOW)
    assert crawler.cycle_budget() == 7
    assert run.requests == 7 and len(fake.requests) == 7
    assert run.status == CrawlRun.Status.PARTIAL and "budget" in run.errors[0]
    # Projects, Deployments for each of the two services, then four pages of two rows where each page
    # starts with the last row of the one before, which that one held back (it might have continued)
    assert fake.requests.count("EnvironmentLogs") == 4
    assert run.lines == 4 and LogLine.objects.count() == 4


def test_it_backfills_a_failed_deployment_and_reads_http_5xx(fake, db):
    fake.deployments = [
        {
            "id": "dep-9",
            "status": "FAILED",
            "createdAt": "2026-05-01T11:00:00Z",
            "serviceId": "svc-api",
            "environmentId": "env-prod",
        }
    ]
    fake.add_log(
        "env-other",
        NOW - timedelta(hours=3),
        "npm ERR! missing script: build",
        severity="error",
        deployment="dep-9",
    )
    for i in range(4):
        fake.add_http("dep-9", NOW - timedelta(minutes=10, seconds=i), 502 if i % 2 else 200, path="/pay")
    run = crawler.crawl_run(client=client_for(fake), now=NOW)
    assert run.status == CrawlRun.Status.OK, run.errors
    assert {"BuildLogs", "DeploymentLogs", "HttpLogs"} <= set(fake.requests)
    api = LogService.objects.get(name="api")
    assert api.backfilled_deployment_id == "dep-9"
    templates = sorted(api.fingerprints.values_list("template", flat=True))
    assert templates == ["GET /pay → 5xx", "npm ERR! missing script: build"]  # 5xx of one route: one error
    assert LogLine.objects.filter(http_status__isnull=False).count() == 4
    crawler.crawl_run(client=client_for(fake), now=NOW + timedelta(hours=2))
    assert fake.requests.count("Deployments") == 4  # discovery again, an hour later
    assert fake.requests.count("BuildLogs") == 1  # the failed deployment was backfilled already
    assert LogLine.objects.count() == 5


def test_it_turns_the_dropped_logs_line_into_an_alert(fake, db):
    fake.add_drop_notice("env-prod", NOW - timedelta(minutes=2), dropped=1234)
    crawler.crawl_run(client=client_for(fake), now=NOW)
    alert = LogAlert.objects.get(rule=AlertRule.LOGS_DROPPED)
    assert alert.service.name == "api" and "Messages dropped: 1234" in alert.message
    assert LogLine.objects.count() == 0


def test_it_runs_one_cycle_at_a_time_and_says_when_it_is_not_configured(fake, db):
    CrawlRun.objects.create(started_at=NOW, heartbeat_at=NOW, status=CrawlRun.Status.RUNNING)
    assert crawler.crawl_run(client=client_for(fake), now=NOW + timedelta(seconds=30)) is None
    CrawlRun.objects.all().delete()
    run = crawler.crawl_run(client=client_for(fake, token=""), now=NOW)
    assert run.status == CrawlRun.Status.SKIPPED and "RAILWAY_TOKEN" in run.errors[0]
    assert fake.requests == [] and not LogService.objects.exists()


def _dies_on_the_second_page(monkeypatch):
    """The cycle stops dead after storing its first page, leaving its run ``running`` as a kill -9 would."""
    real, pages = crawler._store_page, []

    def store(*args, **kwargs):
        pages.append(1)
        if len(pages) == 2:
            raise SystemExit("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(crawler, "_store_page", store)
    return real


def test_it_takes_over_the_run_of_a_crawl_whose_process_died(fake, db, settings, monkeypatch):
    settings.LOGS_CRAWL_PAGE = 4
    settings.LOGS_CRAWL_LEASE_SECONDS = 45
    errors(fake, 10, NOW - timedelta(minutes=30))
    real = _dies_on_the_second_page(monkeypatch)
    with pytest.raises(SystemExit):
        crawler.crawl_run(client=client_for(fake), now=NOW)
    monkeypatch.setattr(crawler, "_store_page", real)
    dead = CrawlRun.objects.get(status="running")
    assert NOW <= dead.heartbeat_at < NOW + timedelta(seconds=5)  # it beat before its last request

    # Within its lease it may be alive (a slow request): the next crawl leaves it be.
    assert crawler.crawl_run(client=client_for(fake), now=dead.heartbeat_at + timedelta(seconds=30)) is None
    # Silent for longer than the lease: it died; the next crawl closes it and crawls.
    run = crawler.crawl_run(client=client_for(fake), now=dead.heartbeat_at + timedelta(seconds=46))
    assert run is not None and run.status == CrawlRun.Status.OK
    dead.refresh_from_db()
    assert dead.status == CrawlRun.Status.FAILED
    assert dead.errors == [
        "the crawl stopped sending heartbeats 46 s ago (its process died or was killed); taken over"
    ]
    assert LogLine.objects.count() == 10  # nothing lost, nothing twice


def test_it_stops_a_crawl_that_was_taken_over_without_rewriting_the_verdict(fake, db, settings, monkeypatch):
    settings.LOGS_CRAWL_PAGE = 4
    errors(fake, 10, NOW - timedelta(minutes=30))
    real = crawler._store_page

    def taken_over_after_the_first_page(*args, **kwargs):
        stored = real(*args, **kwargs)
        # Another cycle judged this one dead (a request slower than the lease) and took over.
        CrawlRun.objects.filter(status="running").update(status="failed", errors=["taken over"])
        return stored

    monkeypatch.setattr(crawler, "_store_page", taken_over_after_the_first_page)
    with pytest.raises(crawler.CrawlLeaseLost):
        crawler.crawl_run(client=client_for(fake), now=NOW)
    run = CrawlRun.objects.get()
    assert (run.status, run.errors) == ("failed", ["taken over"])
    assert LogLine.objects.count() == 3  # it stopped at its next request
