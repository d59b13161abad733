"""POST /api/logs/ingest: NDJSON lines in, errors fingerprinted, bad lines reported by number."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from juggernaut.events import events_after
from logscrawler.models import ErrorFingerprint, ErrorMinute, ErrorOccurrence, LogLine, LogService

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def api_service(db):
    return LogService.objects.create(name="api")


def ndjson(*lines) -> bytes:
    return b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines)


def line(message: str, seconds: int = 0, **extra) -> dict:
    return {
        "service": "api",
        "timestamp": (T0 + timedelta(seconds=seconds)).isoformat(),
        "message": message,
        **extra,
    }


def ingest(client, body: bytes, headers: dict):
    return client.post("/api/logs/ingest", data=body, content_type="application/x-ndjson", **headers)


def test_it_stores_lines_and_fingerprints_errors(client, bearer, api_service):
    body = ndjson(
        line("GET /health 200", 0),
        line("payment 42 failed: card declined", 1, severity="error"),
        line("payment 977 failed: card declined", 2, severity="error"),
        line("Traceback (most recent call last):", 3),
        line('  File "/app/pay.py", line 3, in charge', 3),
        line("KeyError: 'amount'", 3),
    )
    response = ingest(client, body, bearer("write"))
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 6, "duplicates": 0, "rejected": [], "rejected_more": 0}
    assert LogLine.objects.count() == 4  # the three lines of the traceback are one event
    assert LogLine.objects.filter(is_error=True).count() == 3
    payment, trace = ErrorFingerprint.objects.order_by("first_seen")
    assert payment.count == 2 and payment.template == "payment <*> failed: card declined"
    assert trace.exception_type == "KeyError" and trace.count == 1
    assert ErrorOccurrence.objects.count() == 3
    assert ErrorMinute.objects.get(fingerprint=payment).count == 2


def test_it_counts_a_batch_sent_twice_once(client, bearer, api_service):
    body = ndjson(line("db down", 0, severity="error"), line("db down", 5, severity="error", id="rw-1"))
    assert ingest(client, body, bearer("write")).json()["accepted"] == 2
    again = ingest(client, body, bearer("write")).json()
    assert again == {"accepted": 0, "duplicates": 2, "rejected": [], "rejected_more": 0}
    assert LogLine.objects.count() == 2
    assert ErrorFingerprint.objects.get().count == 2


@override_settings(LOGS_INGEST_CREATE_SERVICES=False)
def test_it_reports_bad_lines_by_number_and_keeps_the_rest(client, bearer, api_service):
    body = ndjson(
        line("fine", 0),
        b"{not json",
        b"\xff\xfe binary \x00",
        {"service": "api", "message": "no timestamp"},
        line("from nowhere", 1) | {"service": "ghost"},
        b"[1, 2]",
        line("also fine", 2, severity="warning"),
    )
    response = ingest(client, body, bearer("write"))
    assert response.status_code == 200
    result = response.json()
    assert result["accepted"] == 2
    assert [r["line"] for r in result["rejected"]] == [2, 3, 4, 5, 6]
    errors = {r["line"]: r["error"] for r in result["rejected"]}
    assert "JSON" in errors[2] and "UTF-8" in errors[3] and "timestamp" in errors[4]
    assert "unknown service" in errors[5] and "System Health" in errors[5] and "object" in errors[6]


def test_it_creates_a_service_it_has_not_seen(client, bearer, db):
    response = ingest(
        client, ndjson(line("db down", 0, severity="error") | {"service": "billing"}), bearer("write")
    )
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 1
    assert LogLine.objects.get().service == LogService.objects.get(name="billing")


@override_settings(LOGS_INGEST_CREATE_SERVICES=False)
def test_it_answers_422_saying_where_to_add_a_missing_service(client, bearer, db):
    response = ingest(client, ndjson(line("db down", 0) | {"service": "billing"}), bearer("write"))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_service" and "Add service" in error["message"]
    assert error["details"]["rejected"][0]["line"] == 1
    assert not LogService.objects.exists() and not LogLine.objects.exists()


@override_settings(LOGS_MAX_LINE_CHARS=100)
def test_it_keeps_huge_and_nul_lines_safely(client, bearer, api_service):
    body = ndjson(
        line("x" * 5000, 0, severity="error"), line("bad\u0000byte \ud800", 1, attributes={"k": "\u0000"})
    )
    response = ingest(client, body, bearer("write"))
    assert response.json()["accepted"] == 2
    huge, nul = LogLine.objects.order_by("timestamp")
    assert huge.message.startswith("x" * 100) and huge.message.endswith("[truncated 4900 characters]")
    assert "\x00" not in nul.message and "\x00" not in json.dumps(nul.attributes)


@override_settings(LOGS_INGEST_MAX_BYTES=1000)
def test_it_refuses_an_oversized_body(client, bearer, api_service):
    response = ingest(client, ndjson(*[line("y" * 100, i) for i in range(20)]), bearer("write"))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert LogLine.objects.count() == 0


def test_it_needs_the_write_scope(client, bearer, api_service):
    assert ingest(client, ndjson(line("x")), bearer("read")).status_code == 403
    assert ingest(client, ndjson(line("x")), {}).status_code == 401
    assert LogLine.objects.count() == 0


def test_it_lists_the_top_errors_of_a_window(client, bearer, api_service):
    now = datetime.now(UTC)
    body = ndjson(
        *[
            line(f"timeout after {i} ms calling billing", 0, severity="error")
            | {"timestamp": now.isoformat(), "id": f"a{i}"}
            for i in range(3)
        ],
        line("disk full", 0, severity="error") | {"timestamp": now.isoformat()},
        line("old failure", 0, severity="error") | {"timestamp": (now - timedelta(hours=3)).isoformat()},
    )
    assert ingest(client, body, bearer("write")).json()["accepted"] == 5
    hour = client.get("/api/logs/top-errors?window=1h&service=api", **bearer("read")).json()
    assert [(i["template"], i["count"]) for i in hour["items"]] == [
        ("timeout after <*> calling billing", 3),
        ("disk full", 1),
    ]
    item = hour["items"][0]
    assert item["service"] == "api" and item["status"] == "new"
    assert item["task_id"] == ErrorFingerprint.objects.get(pk=item["fingerprint_id"]).task_id is not None
    day = client.get("/api/logs/top-errors?window=24h", **bearer("read")).json()
    assert len(day["items"]) == 3
    assert client.get("/api/logs/top-errors?window=7d", **bearer("read")).status_code == 422
    assert client.get("/api/logs/top-errors?service=ghost", **bearer("read")).status_code == 404


def test_it_shows_and_resolves_a_fingerprint_over_the_api(client, bearer, api_service):
    body = ndjson(
        line("lock 7 timed out", 0, severity="error"), line("lock 8 timed out", 1, severity="error")
    )
    assert ingest(client, body, bearer("write")).json()["accepted"] == 2
    fp = ErrorFingerprint.objects.get()
    detail = client.get(f"/api/logs/fingerprints/{fp.pk}", **bearer("read")).json()
    assert detail["count"] == 2 and [s["message"] for s in detail["samples"]] == [
        "lock 8 timed out",
        "lock 7 timed out",
    ]
    open_alerts = client.get("/api/logs/alerts", **bearer("read")).json()
    assert [a["rule"] for a in open_alerts] == ["new_fingerprint"]
    assert client.post(f"/api/logs/fingerprints/{fp.pk}/resolve", **bearer("read")).status_code == 403
    resolved = client.post(f"/api/logs/fingerprints/{fp.pk}/resolve", **bearer("write"))
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    [changed] = [e for e in events_after("logs", 0) if e["type"] == "fingerprint_status"]
    assert changed["data"]["actor"] == "operator:alice (token test)"  # actor_of, as the engine API names it
    assert client.get("/api/logs/alerts", **bearer("read")).json() == []
    bad = client.post(f"/api/logs/fingerprints/{fp.pk}/explode", **bearer("write"))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_action"
    assert client.get("/api/logs/fingerprints/999999", **bearer("read")).status_code == 404
    assert client.get("/api/logs/fingerprints/0", **bearer("read")).status_code == 422
