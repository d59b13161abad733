"""The System Health page: what is wrong, in words, with the operator's actions; the Overview line."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from juggernaut import hq
from juggernaut.events import events_after
from juggernaut.hq import AREAS
from juggernaut.timefmt import exact_utc
from logscrawler import services, tools
from logscrawler.models import CrawlRun, FingerprintStatus, LogAlert, LogService
from logscrawler.services import Record


@pytest.fixture
def api(db):
    return LogService.objects.create(name="api")


def ingest(service, *messages):
    now = timezone.now()
    records = [
        Record(now - timedelta(seconds=i), m, "error", source_id=uuid.uuid4().hex)
        for i, m in enumerate(messages)
    ]
    return services.logs_ingest(service, records, now=now)


def test_it_shows_new_errors_alerts_top_errors_and_the_crawler(alice_client, api):
    ingest(api, "payment 1 declined", "payment 2 declined", "ledger out of balance")
    page = alice_client.get("/logs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="logs-attention"' in html and "payment &lt;*&gt; declined" in html
    assert 'id="logs-top-1h"' in html and 'class="logs-spark"' in html
    assert "Railway is not connected" in html
    assert "Open alerts" in html and "ledger out of balance" in html


def test_it_resolves_an_error_and_closes_its_alert(alice_client, api):
    ingest(api, "cache node 3 unreachable")
    fp = api.fingerprints.get()
    answer = alice_client.post(
        f"/logs/fingerprints/{fp.pk}/resolve/", {"page": "logs"}, HTTP_HX_REQUEST="true"
    )
    assert answer.status_code == 200 and "marked resolved" in answer.content.decode()
    assert 'id="logs-attention"' in answer.content.decode()
    fp.refresh_from_db()
    assert fp.status == FingerprintStatus.RESOLVED
    assert not LogAlert.objects.filter(closed_at__isnull=True).exists()
    [changed] = [e for e in events_after("logs", 0) if e["type"] == "fingerprint_status"]
    assert changed["data"]["actor"] == "operator:alice"  # named as every operator action names her
    refused = alice_client.post(
        f"/logs/fingerprints/{fp.pk}/explode/", {"page": "logs"}, HTTP_HX_REQUEST="true"
    )
    assert refused.status_code == 200 and "Refused: unknown action" in refused.content.decode()
    assert alice_client.post("/logs/fingerprints/999999/resolve/").status_code == 404
    assert alice_client.get(f"/logs/fingerprints/{fp.pk}/resolve/").status_code == 405


def test_it_shows_a_fingerprint_with_samples_chart_and_task(alice_client, api):
    ingest(api, "queue 7 stalled", "queue 8 stalled")
    fp = api.fingerprints.get()
    html = alice_client.get(f"/logs/fingerprints/{fp.pk}/").content.decode()
    assert "queue 8 stalled" in html and "Occurrences per hour, last 24 hours (UTC)" in html
    assert f"/engine/tasks/{fp.task_id}/" in html


def test_it_lists_the_recent_crawl_runs_with_their_window_and_in_the_admin_read_only(alice_client, db):
    now = timezone.now().replace(microsecond=0)
    older = CrawlRun.objects.create(
        started_at=now - timedelta(minutes=10),
        finished_at=now - timedelta(minutes=10),
        status="ok",
        window_start=now - timedelta(minutes=70),
        window_end=now - timedelta(minutes=11),
        lines=412,
        new_fingerprints=3,
        requests=6,
        budget=7,
    )
    CrawlRun.objects.create(
        started_at=now - timedelta(minutes=5),
        finished_at=now - timedelta(minutes=5),
        status="partial",
        window_start=now - timedelta(minutes=11),
        lines=0,
        requests=7,
        budget=7,
        errors=["env-prod: this cycle's budget of 7 requests is spent"],
    )
    html = alice_client.get("/logs/").content.decode()
    table = html[html.index('id="logs-runs"') :]
    rows = table[: table.index("</table>")].split("<tr>")[2:]
    assert len(rows) == 2 and "partial" in rows[0] and "ok" in rows[1]  # newest first
    assert "7 of 7" in rows[0] and "budget of 7 requests is spent" in rows[0] and "nothing new" in rows[0]
    assert ">412<" in rows[1] and ">3<" in rows[1] and "6 of 7" in rows[1]
    # the window in the HQ's one format: an age, the exact UTC time on hover
    assert f'title="{exact_utc(older.window_start)}"' in rows[1] and "1 h 10 min ago" in rows[1]
    assert f'title="{exact_utc(older.window_end)}"' in rows[1] and "11 min ago" in rows[1]
    listing = alice_client.get("/admin/logscrawler/crawlrun/")
    assert listing.status_code == 200 and "budget of 7 requests is spent" in listing.content.decode()
    detail = alice_client.get(f"/admin/logscrawler/crawlrun/{older.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert alice_client.get("/admin/logscrawler/crawlrun/add/").status_code == 403
    assert (
        alice_client.post(f"/admin/logscrawler/crawlrun/{older.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert CrawlRun.objects.count() == 2


def test_it_needs_a_signed_in_operator(client, bob, api):
    assert client.get("/logs/").status_code == 302
    client.force_login(bob)
    assert client.get("/logs/").status_code in (302, 403)


def test_it_says_on_the_overview_what_is_wrong(api):
    area = AREAS["logs"]
    assert area.status().state == "idle" and "Railway is not connected" in area.status().text
    ingest(api, "disk full on /var")
    status = area.status()
    assert status.state == "warn" and "open alert" in status.text and "disk full" in status.text
    fp = api.fingerprints.get()
    services.fingerprint_set_status(fp, "resolve", actor="test")
    assert AREAS["logs"].status().state in ("ok", "idle")
    ingest(api, "disk full on /var")
    assert AREAS["logs"].status().state == "error" and "came back" in AREAS["logs"].status().text


def test_it_answers_the_chat_tools(api):
    ingest(api, "socket 4 closed by peer", "socket 9 closed by peer")
    [top] = tools.top_errors("1h", "api")
    assert (top["template"], top["count"], top["status"]) == ("socket <*> closed by peer", 2, "new")
    detail = tools.error_detail(top["fingerprint_id"])
    assert [s["message"] for s in detail["samples"]] == ["socket 4 closed by peer", "socket 9 closed by peer"]
    assert tools.top_errors("7d") == [{"error": "window must be '1h' or '24h'"}]
    assert tools.error_detail(10**9) == {"error": "no error with id 1000000000"}


def test_it_adds_a_service_from_system_health(alice_client, db):
    page = alice_client.get("/logs/")
    assert b"Add service" in page.content
    response = alice_client.post("/logs/services/", {"name": "billing"}, follow=True)
    assert LogService.objects.filter(name="billing").exists()
    assert b"billing" in response.content and b"added" in response.content
    again = alice_client.post("/logs/services/", {"name": "billing"}, follow=True)
    assert b"exists already" in again.content
    assert LogService.objects.filter(name="billing").count() == 1


def test_it_heads_the_overview_with_the_worst_open_alert_without_cutting_a_word(api):
    from logscrawler.alerts import alert_open
    from logscrawler.live import logs_area_status

    long = "five hundreds on checkout " + "while the payments gateway answered slowly " * 4
    alert_open("sustained_5xx", api, long, now=timezone.now() - timedelta(minutes=5))
    alert_open("logs_dropped", api, "Railway dropped 12 lines", now=timezone.now())
    status = logs_area_status()
    assert "worst on api: sustained 5xx: five hundreds on checkout" in status.text
    words = set(long.split())
    assert status.text.endswith("…") and status.text.split(": ")[-1][:-1].split()[-1] in words


def test_it_keeps_an_errors_page_live_with_its_own_fragment_only(alice_client, api):
    ingest(api, "payment 42 failed: card declined")
    fp = api.fingerprints.get()
    page = alice_client.get(f"/logs/fingerprints/{fp.pk}/")
    assert f'ws-connect="/ws/hq/?page=logs-fp-{fp.pk}"'.encode() in page.content
    services.fingerprint_set_status(fp, "resolve", actor="alice")
    live = hq.render_events(events_after("logs", 0), f"logs-fp-{fp.pk}")
    # only ids the page has: no out-of-band swap without a target
    assert f'id="logs-fp-{fp.pk}" hx-swap-oob="true"' in live and "Resolved" in live
    for missing in ("logs-top", "logs-alerts", "logs-attention", "logs-crawler"):
        assert f'id="{missing}"' not in live


def test_it_links_an_errors_task_back_to_the_error(alice_client, api):
    ingest(api, "payment 42 failed: card declined")
    fp = api.fingerprints.get()
    page = alice_client.get(f"/engine/tasks/{fp.task_id}/")
    assert f'href="/logs/fingerprints/{fp.pk}/"'.encode() in page.content
    assert b"{&#x27;type&#x27;" not in page.content
