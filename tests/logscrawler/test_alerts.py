"""Alert rules fire once when they should and not on noise; each new error gets one linked task."""

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from juggernaut.engine.models import Task
from logscrawler import services
from logscrawler.models import (
    AlertRule,
    AlertThresholds,
    ErrorFingerprint,
    FingerprintStatus,
    LogAlert,
    LogService,
)
from logscrawler.services import Record

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def api(db):
    return LogService.objects.create(name="api")


def at(minutes_ago: float, message: str, severity: str = "error", **attributes) -> Record:
    return Record(
        timestamp=NOW - timedelta(minutes=minutes_ago),
        message=message,
        severity=severity,
        attributes=attributes,
    )


def rules() -> list[str]:
    return sorted(LogAlert.objects.values_list("rule", flat=True))


def test_it_opens_one_alert_and_one_linked_task_for_a_new_error(api):
    services.logs_ingest(api, [at(1, "payment 1 declined by bank")], now=NOW)
    services.logs_ingest(api, [at(0.5, "payment 2 declined by bank")], now=NOW)
    fp = ErrorFingerprint.objects.get()
    assert rules() == [AlertRule.NEW_FINGERPRINT]
    task = Task.objects.get()
    assert (task.kind, task.source, task.dedupe_key) == (
        "investigate_error",
        "logs",
        f"logs.fingerprint.{fp.pk}",
    )
    assert task.origin == {"type": "fingerprint", "id": fp.pk} and task.payload["fingerprint_id"] == fp.pk
    assert fp.task_id == task.pk


def test_it_does_not_call_a_one_word_variant_news(api):
    services.logs_ingest(api, [at(2, "worker alpha lost its lease on queue")], now=NOW)
    services.logs_ingest(api, [at(1, "worker beta lost its lease on queue")], now=NOW)
    assert ErrorFingerprint.objects.count() == 2
    assert rules() == [AlertRule.NEW_FINGERPRINT] and Task.objects.count() == 1


def test_it_fires_a_spike_once_and_not_on_noise(api, settings):
    settings.LOGS_SPIKE_MIN, settings.LOGS_SPIKE_FACTOR = 20, 5.0
    baseline = [at(60 - 5 * i, "cache miss storm on shard 3") for i in range(12)]  # one per window
    services.logs_ingest(api, baseline, now=NOW - timedelta(minutes=6))
    noise = [at(4 - i * 0.1, "cache miss storm on shard 3", source_id=f"n{i}") for i in range(10)]
    services.logs_ingest(api, [*noise], now=NOW)
    assert AlertRule.SPIKE not in rules()
    burst = [
        Record(NOW - timedelta(seconds=i), "cache miss storm on shard 3", "error", source_id=f"b{i}")
        for i in range(15)
    ]
    services.logs_ingest(api, burst, now=NOW)
    assert rules().count(AlertRule.SPIKE) == 1
    alert = LogAlert.objects.get(rule=AlertRule.SPIKE)
    assert alert.data["count"] == 25 and alert.data["baseline"] == 1.0
    more = [
        Record(
            NOW - timedelta(seconds=i, milliseconds=500),
            "cache miss storm on shard 3",
            "error",
            source_id=f"m{i}",
        )
        for i in range(30)
    ]
    services.logs_ingest(api, more, now=NOW)
    assert rules().count(AlertRule.SPIKE) == 1  # still the one open alert
    assert Task.objects.count() == 1  # the spike reuses the fingerprint's open task


def test_it_fires_sustained_5xx_after_consecutive_windows_only(db, settings):
    settings.LOGS_5XX_WINDOWS, settings.LOGS_5XX_PERCENT, settings.LOGS_5XX_MIN_REQUESTS = 3, 5.0, 20

    def window(service: str, ends_minutes_ago: int, failed: int) -> list[Record]:
        """Twenty responses inside the five-minute window that ends ``ends_minutes_ago`` before now."""
        return [
            Record(
                NOW - timedelta(minutes=ends_minutes_ago, seconds=10 + i),
                f'10.0.0.1 "GET /pay HTTP/1.1" {502 if i < failed else 200} 12',
                source_id=f"{service}-{ends_minutes_ago}-{i}",
            )
            for i in range(20)
        ]

    flaky = LogService.objects.create(name="flaky")
    services.logs_ingest(flaky, window("flaky", 10, 4) + window("flaky", 5, 4), now=NOW)
    assert AlertRule.SUSTAINED_5XX not in rules()  # the current window has no traffic yet
    services.logs_ingest(flaky, window("flaky", 0, 0), now=NOW)
    assert AlertRule.SUSTAINED_5XX not in rules()  # and then it recovered

    down = LogService.objects.create(name="down")
    for ends in (10, 5, 0):
        services.logs_ingest(down, window("down", ends, 4), now=NOW)
    services.logs_ingest(down, window("down", 1, 10), now=NOW)
    alerts = LogAlert.objects.filter(rule=AlertRule.SUSTAINED_5XX)
    assert [(a.service.name, a.fingerprint) for a in alerts] == [("down", None)]


def test_it_alerts_when_a_resolved_error_comes_back(api):
    services.logs_ingest(api, [at(30, "disk quota exceeded on /data")], now=NOW)
    ErrorFingerprint.objects.update(status=FingerprintStatus.RESOLVED)
    services.logs_ingest(api, [at(1, "disk quota exceeded on /data")], now=NOW)
    assert AlertRule.REGRESSION in rules()
    assert ErrorFingerprint.objects.get().status == FingerprintStatus.REGRESSED


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_it_posts_alerts_to_the_webhook(api, settings, django_capture_on_commit_callbacks):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings.LOGS_ALERT_WEBHOOK_SECRET_URL = f"http://127.0.0.1:{server.server_port}/hook"
        with django_capture_on_commit_callbacks(execute=True):
            services.logs_ingest(api, [at(1, "TLS handshake failed with upstream")], now=NOW)
    finally:
        server.shutdown()
    assert _Hook.received == [{"text": "[api] new error: TLS handshake failed with upstream"}]


def test_it_takes_thresholds_from_the_admin_over_the_settings(api, settings, alice_client):
    settings.LOGS_SPIKE_MIN = 1000
    response = alice_client.post(
        "/admin/logscrawler/alertthresholds/add/",
        {"spike_min": "5", "spike_factor": "2"},
    )
    assert response.status_code == 302
    assert AlertThresholds.effective()["spike_min"] == 5
    assert AlertThresholds.effective()["fivexx_windows"] == settings.LOGS_5XX_WINDOWS
    burst = [
        Record(NOW - timedelta(seconds=i), "cache stampede on key users", "error", source_id=f"s{i}")
        for i in range(6)
    ]
    services.logs_ingest(api, burst, now=NOW)
    assert AlertRule.SPIKE in rules()


def test_a_log_line_cannot_mention_or_link_in_slack(api, settings, django_capture_on_commit_callbacks):
    """Slack reads <!channel>, <@U…>, <url|text> and @here as commands; a log line's are only text."""
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    line = (
        "deploy failed <!channel> <!here|here> @here @Everyone <@U024BE7LH> <https://evil.example|log in> a&b"
    )
    try:
        settings.LOGS_ALERT_WEBHOOK_SECRET_URL = f"http://127.0.0.1:{server.server_port}/hook"
        with django_capture_on_commit_callbacks(execute=True):
            services.logs_ingest(api, [at(1, line)], now=NOW)
    finally:
        server.shutdown()
    [message] = _Hook.received
    text = message["text"]
    assert "<" not in text and ">" not in text  # no mention, no link: Slack's control sequences need them
    assert "&lt;!channel&gt;" in text and "&lt;!here|here&gt;" in text and "a&amp;b" in text
    assert "@here" not in text and "@Everyone" not in text and "@\u200bhere" in text


def test_the_webhooks_secret_path_never_reaches_the_logs(
    api, settings, caplog, django_capture_on_commit_callbacks
):
    """urllib3 logs each retry with the URL's path, which is where a Slack webhook keeps its secret."""
    from tests.conftest import free_port

    secret = "services/T0001/B0002/Xq7s3cretW3bhookPath"
    settings.LOGS_ALERT_WEBHOOK_SECRET_URL = f"http://127.0.0.1:{free_port()}/{secret}"  # nobody listens
    caplog.set_level(logging.DEBUG)
    # a handler of its own on urllib3's logger sees records before any filter of the root's handlers
    seen: list[str] = []
    own = logging.Handler()
    own.emit = lambda record: seen.append(record.getMessage())
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.addHandler(own)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.logs_ingest(api, [at(1, "TLS handshake failed with upstream")], now=NOW)
    finally:
        urllib3_log.removeHandler(own)
    assert any("Retrying" in line for line in seen) and "alert webhook failed" in caplog.text
    for text in [*seen, caplog.text]:
        assert "Xq7s3cretW3bhookPath" not in text and "B0002" not in text


def test_a_webhook_inside_the_network_is_not_called(
    api, settings, caplog, django_capture_on_commit_callbacks
):
    settings.HQ_OUTBOUND_ALLOW_PRIVATE = False
    settings.LOGS_ALERT_WEBHOOK_SECRET_URL = (
        "http://169.254.169.254/services/T0001/B0002/Xq7s3cretW3bhookPath"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.logs_ingest(api, [at(1, "TLS handshake failed with upstream")], now=NOW)
    assert "alert webhook not sent: 169.254.169.254 is a cloud metadata address" in caplog.text
    assert LogAlert.objects.count() == 1  # the alert itself was opened
    assert "Xq7s3cretW3bhookPath" not in caplog.text
