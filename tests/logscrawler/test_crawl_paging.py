"""The crawl reads every line exactly once, however Railway's paging, filter and rate limit fall."""

from collections import Counter
from datetime import timedelta

from logscrawler import crawler
from logscrawler.models import AlertRule, CrawlCursor, CrawlRun, LogAlert, LogLine, LogService
from tests.fakes.railway import _filtered
from tests.logscrawler.crawling import NOW, client_for, errors


def stored() -> Counter:
    return Counter(LogLine.objects.values_list("message", flat=True))


def test_it_keeps_the_lines_of_a_service_created_since_discovery(fake, db):
    errors(fake, 3, NOW - timedelta(minutes=10))
    assert crawler.crawl_run(client=client_for(fake), now=NOW).status == CrawlRun.Status.OK
    # a service is added on Railway; discovery is cached for the hour, yet its lines must not be lost
    fake.services["svc-billing"] = "billing"
    errors(
        fake,
        4,
        NOW + timedelta(minutes=1),
        message="invoice {n} failed: ledger locked",
        service="svc-billing",
    )
    errors(fake, 2, NOW + timedelta(minutes=1, seconds=30), message="charge {n} retry failed")
    run = crawler.crawl_run(client=client_for(fake), now=NOW + timedelta(minutes=5))
    assert run.status == CrawlRun.Status.OK, run.errors
    billing = LogService.objects.get(railway_service_id="svc-billing")
    assert billing.name == "billing"
    assert billing.lines.count() == 4 and run.lines == 6
    counts = stored()
    assert len(counts) == 9 and set(counts.values()) == {1}  # every line, each once
    # a third cycle reads nothing new and stores nothing twice
    crawler.crawl_run(client=client_for(fake), now=NOW + timedelta(minutes=10))
    assert LogLine.objects.count() == 9


def test_it_stores_a_new_service_under_its_id_when_railway_cannot_name_it(fake, db):
    errors(fake, 1, NOW - timedelta(minutes=10))
    crawler.crawl_run(client=client_for(fake), now=NOW)
    errors(fake, 2, NOW + timedelta(minutes=1), message="job {n} crashed", service="svc-gone")
    run = crawler.crawl_run(client=client_for(fake), now=NOW + timedelta(minutes=5))
    placeholder = LogService.objects.get(railway_service_id="svc-gone")  # not (or no longer) in Projects
    assert placeholder.name == "Railway service svc-gone" and placeholder.lines.count() == 2
    assert run.lines == 2


def test_it_reads_every_line_of_an_instant_that_fills_more_than_a_page(fake, db, settings):
    settings.LOGS_CRAWL_PAGE = 4
    burst = NOW - timedelta(minutes=20)
    for n in range(11):  # a worker that logs eleven errors in the same microsecond
        fake.add_log("env-prod", burst, f"worker {n} lost its lease", severity="error")
    errors(fake, 3, burst + timedelta(seconds=1), message="queue {n} stalled")
    run = crawler.crawl_run(client=client_for(fake), now=NOW)
    assert run.status == CrawlRun.Status.OK, run.errors
    counts = stored()
    assert len(counts) == 14 and set(counts.values()) == {1}
    assert run.lines == 14
    instant = [v for op, v in fake.calls if op == "EnvironmentLogs" and v["afterLimit"] > 4]
    assert len(instant) == 1 and instant[0]["afterDate"].startswith(burst.strftime("%Y-%m-%dT%H:%M:%S"))


def test_it_pages_forward_from_an_anchor_as_railway_does(fake, db, settings):
    settings.LOGS_CRAWL_PAGE = 4
    errors(fake, 6, NOW - timedelta(minutes=30))
    crawler.crawl_run(client=client_for(fake), now=NOW)
    pages = [v for op, v in fake.calls if op == "EnvironmentLogs"]
    # afterDate is the latest date wanted, the anchor is where the page starts
    assert pages[0]["anchorDate"] == (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert pages[0]["afterDate"] == "2026-05-01T12:00:00.000000999Z"
    assert {p["afterLimit"] for p in pages} == {4} and {p["beforeLimit"] for p in pages} == {0}
    assert pages[1]["anchorDate"] == (NOW - timedelta(minutes=30, seconds=-3)).isoformat().replace(
        "+00:00", "Z"
    )
    assert LogLine.objects.count() == 6


def test_it_pages_http_logs_until_caught_up_within_the_budget(fake, db, settings):
    settings.LOGS_CRAWL_PAGE = 4
    fake.deployments = [
        {
            "id": "dep-1",
            "status": "SUCCESS",
            "createdAt": "2026-05-01T10:00:00Z",
            "serviceId": "svc-api",
            "environmentId": "env-prod",
        }
    ]
    for i in range(13):  # more requests in one interval than one page holds
        fake.add_http(
            "dep-1", NOW - timedelta(minutes=20, seconds=-i), 503 if i % 3 == 0 else 200, path="/pay"
        )
    run = crawler.crawl_run(client=client_for(fake), now=NOW)
    assert run.status == CrawlRun.Status.OK, run.errors
    assert LogLine.objects.filter(http_status__isnull=False).count() == 13
    calls = [v for op, v in fake.calls if op == "HttpLogs"]
    # four full pages, each starting on the last row of the one before, then a short one: caught up
    assert len(calls) == 5 and all("limit" not in v and v["afterLimit"] == 4 for v in calls)
    assert CrawlCursor.objects.get(stream="http:dep-1").position == NOW - timedelta(minutes=20, seconds=-12)
    # on a tight budget the loop stops at the budget and the next cycle picks up where it stopped
    LogLine.objects.all().delete()
    CrawlCursor.objects.filter(stream="http:dep-1").delete()
    settings.LOGS_RAILWAY_HOURLY_REQUESTS, settings.LOGS_CRAWL_MINUTES = 60, 5  # 4 requests a cycle
    fake.calls.clear()
    first = crawler.crawl_run(client=client_for(fake), now=NOW + timedelta(minutes=5))
    assert first.requests == 4 and len(fake.calls) == 4 and "budget" in first.errors[0]
    assert LogLine.objects.filter(http_status__isnull=False).count() == 10  # three pages after the env page
    crawler.crawl_run(client=client_for(fake), now=NOW + timedelta(minutes=10))
    assert LogLine.objects.filter(http_status__isnull=False).count() == 13


def test_it_asks_for_errors_and_warnings_and_still_sees_the_dropped_notice(fake, db):
    at = NOW - timedelta(minutes=5)
    fake.add_log("env-prod", at, "user 7 signed in", severity="info")
    fake.add_log("env-prod", at + timedelta(seconds=1), "slow query on orders", severity="warn")
    fake.add_log("env-prod", at + timedelta(seconds=2), "charge 9 failed", severity="error")
    fake.add_drop_notice("env-prod", at + timedelta(seconds=3), dropped=88)  # Railway writes it as info
    run = crawler.crawl_run(client=client_for(fake), now=NOW)
    assert run.status == CrawlRun.Status.OK, run.errors
    assert set(stored()) == {"slow query on orders", "charge 9 failed"}
    alert = LogAlert.objects.get(rule=AlertRule.LOGS_DROPPED)
    assert "Messages dropped: 88" in alert.message


def test_the_fake_applies_railways_filter_syntax():
    rows = [
        {
            "message": "charge failed: card declined",
            "severity": "error",
            "tags": {"serviceId": "svc-api"},
            "attributes": [{"key": "orderId", "value": "42"}],
        },
        {"message": "charge ok", "severity": "info", "tags": {"serviceId": "svc-worker"}, "attributes": []},
        {
            "message": "disk almost full",
            "severity": "warn",
            "tags": {"serviceId": "svc-api"},
            "attributes": [],
        },
    ]

    def kept(expression: str) -> list[str]:
        return [r["message"] for r in _filtered(rows, expression)]

    assert kept("@level:error OR @level:warn") == ["charge failed: card declined", "disk almost full"]
    assert kept("charge -@level:error") == ["charge ok"]
    assert kept('"card declined" OR @orderId:7') == ["charge failed: card declined"]
    assert kept("@service:svc-api AND (disk OR @orderId:42)") == [
        r["message"] for r in rows if r is not rows[1]
    ]
    assert kept("@level:warn charge") == []
    http = [{"path": "/pay", "httpStatus": s} for s in (200, 404, 502, 503)]
    assert [r["httpStatus"] for r in _filtered(http, "@httpStatus:>=500")] == [502, 503]
    assert [r["httpStatus"] for r in _filtered(http, "@httpStatus:400..502 -@httpStatus:404")] == [502]


def test_it_never_sends_more_than_its_budget_when_railway_answers_429(fake, db, settings):
    settings.LOGS_RAILWAY_HOURLY_REQUESTS, settings.LOGS_CRAWL_MINUTES = 96, 5  # 7 requests a cycle
    fake.hourly_limit = 2  # Projects and one Deployments pass, then every answer is a 429
    run = crawler.crawl_run(client=client_for(fake, retries=10), now=NOW)
    assert len(fake.requests) == 7  # the session's retries stopped at the budget
    assert run.requests == 7 and run.status == CrawlRun.Status.PARTIAL
    assert "rate limit" in run.errors[0]
