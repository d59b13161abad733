"""POST /api/logs/ingest against a hostile sender: one bad line is one rejected line, never a 500,
never a lost batch; the answer stays small however many lines are bad. Runs on SQLite and on
PostgreSQL (which refuses NUL in text and ``\\u0000`` or ``Infinity`` in jsonb)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from channels.testing import ApplicationCommunicator
from django.test import override_settings

from juggernaut.asgi import application
from logscrawler.fingerprint import Fingerprinter
from logscrawler.models import LogLine, LogService

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def api_service(db):
    return LogService.objects.create(name="api")


def good(n: int) -> bytes:
    stamp = (T0 + timedelta(seconds=n)).isoformat()
    return json.dumps({"service": "api", "timestamp": stamp, "message": f"good line {n}"}).encode()


def raw_line(message: str = "hostile", **fields) -> bytes:
    """A line as a hostile sender writes it: ``fields`` are JSON text, pasted in as they are."""
    parts = {"service": '"api"', "timestamp": f'"{T0.isoformat()}"', "message": json.dumps(message)}
    parts.update(fields)
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}").encode()


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def ingest(client, body: bytes, headers: dict):
    return client.post("/api/logs/ingest", data=body, content_type="application/x-ndjson", **headers)


def between_good_lines(bad: bytes) -> bytes:
    return b"\n".join([good(1), bad, good(2)])


HOSTILE_REJECTED = {
    "a bare line of 3,000 [": b"[" * 3000,
    "JSON nested 2,000 deep in the line": raw_line(extra=deep(2000)),
    "JSON nested 2,000 deep in attributes": raw_line(attributes='{"a": ' + deep(2000) + "}"),
    "JSON nested 40 deep in attributes": raw_line(attributes='{"a": ' + deep(40) + "}"),
    "NUL in the service name": raw_line(service='"api\\u0000"'),
    "a raw NUL byte in the line": b'{"service": "api\x00", "timestamp": 0, "message": "x"}',
    "NUL in the id": raw_line(id='"rw-1\\u0000"'),
    "a lone surrogate in the service name": raw_line(service='"api\\ud800"'),
    "a lone surrogate in the id": raw_line(id='"\\udfff"'),
    "invalid UTF-8": b'{"service": "api", "timestamp": 0, "message": "\xc3\x28"}',
    "a date in the year 10000 by its offset": raw_line(timestamp='"9999-12-31T23:59:59-05:00"'),
    "a date in the year 10000 in epoch milliseconds": raw_line(timestamp="253402300800000"),
    "a date before 1970": raw_line(timestamp='"1900-01-01T00:00:00Z"'),
    "an infinite timestamp": raw_line(timestamp="1e999"),
    "an Infinity timestamp": raw_line(timestamp="-Infinity"),
    "a number of 5,000 digits": raw_line(timestamp="1" * 5000),
}


@pytest.mark.parametrize("bad", HOSTILE_REJECTED.values(), ids=HOSTILE_REJECTED.keys())
def test_it_rejects_a_hostile_line_alone_and_keeps_the_rest(client, bearer, api_service, bad):
    response = ingest(client, between_good_lines(bad), bearer("write"))
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["accepted"] == 2
    assert [r["line"] for r in result["rejected"]] == [2] and result["rejected"][0]["error"]
    assert sorted(LogLine.objects.values_list("message", flat=True)) == ["good line 1", "good line 2"]


HOSTILE_KEPT = {
    "JSON nested 2,000 deep inside the message text": ('{"a": ' * 2000) + "1" + "}" * 2000,
    "JSON nested 500 deep inside the message text": ('{"a": ' * 500) + "1" + "}" * 500,
    "a NUL inside the message text": "db\u0000down",
    "a lone surrogate inside the message text": "db \ud800 down",
}


@pytest.mark.parametrize("message", HOSTILE_KEPT.values(), ids=HOSTILE_KEPT.keys())
def test_it_stores_hostile_message_text_as_plain_text(client, bearer, api_service, message):
    response = ingest(client, between_good_lines(raw_line(message, severity='"error"')), bearer("write"))
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 3 and response.json()["rejected"] == []
    stored = LogLine.objects.exclude(message__startswith="good line").get()
    assert "\x00" not in stored.message and stored.is_error
    stored.message.encode("utf-8")  # storable text: no lone surrogate survived


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e999", "-1e999"])
def test_it_stores_non_finite_attribute_numbers_as_null(client, bearer, api_service, number):
    bad = raw_line("slow query", attributes=f'{{"ms": {number}, "rows": [1, {number}], "ok": 2.5}}')
    response = ingest(client, between_good_lines(bad), bearer("write"))
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 3
    stored = LogLine.objects.get(message="slow query")
    assert stored.attributes == {"ms": None, "rows": [1, None], "ok": 2.5}


def test_it_stores_nul_and_lone_surrogates_in_attributes_as_replacement_characters(
    client, bearer, api_service
):
    bad = raw_line(
        "odd attributes", attributes='{"k\\u0000ey": "v\\u0000", "s": "\\ud800", "n": {"\\u0000": 1}}'
    )
    response = ingest(client, between_good_lines(bad), bearer("write"))
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 3
    stored = LogLine.objects.get(message="odd attributes")
    dumped = json.dumps(stored.attributes, ensure_ascii=False)
    assert "\\u0000" not in dumped and "\x00" not in dumped
    dumped.encode("utf-8")


def test_it_rejects_a_line_that_fails_while_stored_and_keeps_its_batch(
    client, bearer, api_service, monkeypatch
):
    # A failure no check foresaw, deep in the pipeline, for one line of a batch.
    fingerprint = Fingerprinter.fingerprint

    def failing(self, text):
        if "poison" in text:
            raise ArithmeticError("unforeseen")
        return fingerprint(self, text)

    monkeypatch.setattr(Fingerprinter, "fingerprint", failing)
    body = b"\n".join([good(1), raw_line("poison pill", severity='"error"'), good(2)])
    response = ingest(client, body, bearer("write"))
    assert response.status_code == 200
    assert response.json()["rejected"] == [{"line": 2, "error": "the line could not be stored"}]
    assert sorted(LogLine.objects.values_list("message", flat=True)) == ["good line 1", "good line 2"]


@override_settings(LOGS_INGEST_MAX_REJECTED=5)
def test_it_lists_the_first_rejections_and_counts_the_rest(client, bearer, api_service):
    body = b"\n".join([good(0), *[b"1"] * 10_000, good(1), *[b'{"service": "ghost"}'] * 3, b"1"])
    response = ingest(client, body, bearer("write"))
    assert response.status_code == 200
    result = response.json()
    assert result["accepted"] == 2
    assert [r["line"] for r in result["rejected"]] == [2, 3, 4, 5, 6]
    assert result["rejected_more"] == 10_004 - 5
    assert len(response.content) < 1000


def test_it_answers_two_hundred_thousand_bad_lines_in_a_few_kilobytes(client, bearer, api_service):
    body = b"1\n" * 200_000  # lines that are JSON but not objects: each one a rejection
    response = ingest(client, body, bearer("write"))
    assert response.status_code == 200
    result = response.json()
    assert result["accepted"] == 0 and result["rejected_more"] == 200_000 - len(result["rejected"])
    assert len(result["rejected"]) == 100  # LOGS_INGEST_MAX_REJECTED's default
    assert len(response.content) < 10_000


@override_settings(LOGS_INGEST_MAX_BYTES=4 * 1024 * 1024)
def test_it_accepts_a_body_above_the_general_limit_up_to_its_own(client, bearer, api_service, settings):
    line = json.loads(good(0))
    lines = [json.dumps(line | {"message": f"line {i} " + "x" * 1000}).encode() for i in range(3000)]
    body = b"\n".join(lines)
    assert settings.HQ_MAX_BODY_BYTES < len(body) < settings.LOGS_INGEST_MAX_BYTES
    response = ingest(client, body, bearer("write"))
    assert response.status_code == 200, response.content[:300]
    assert response.json()["accepted"] == 3000
    too_big = ingest(client, body + b"\n" + body, bearer("write"))
    assert too_big.status_code == 413
    assert too_big.json()["error"]["details"] == {"limit": 4 * 1024 * 1024}


# --- the body limit in front of Django (any ASGI server) ---------------------------------------------


def _http_scope(path: str, headers: list) -> dict:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


async def _answer(comm: ApplicationCommunicator) -> tuple[int, dict]:
    start = await comm.receive_output(timeout=10)
    body = await comm.receive_output(timeout=10)
    return start["status"], json.loads(body["body"])


@override_settings(LOGS_INGEST_MAX_BYTES=1000)
async def test_it_refuses_an_announced_oversized_body_before_reading_it():
    headers = [(b"content-length", b"5000"), (b"authorization", b"Bearer nonsense")]
    comm = ApplicationCommunicator(application, _http_scope("/api/logs/ingest", headers))
    # nothing of the body is sent: the answer comes from the announced length alone
    status, answer = await _answer(comm)
    assert status == 413 and answer["error"]["details"] == {"limit": 1000}


@override_settings(LOGS_INGEST_MAX_BYTES=1000)
async def test_it_stops_reading_a_chunked_body_at_the_limit():
    comm = ApplicationCommunicator(application, _http_scope("/api/logs/ingest", []))
    for _ in range(3):
        await comm.send_input({"type": "http.request", "body": b"x" * 400, "more_body": True})
    status, answer = await _answer(comm)  # answered while the sender is still sending
    assert status == 413 and answer["error"]["code"] == "body_too_large"


@override_settings(LOGS_INGEST_BATCH_LINES=4)
def test_it_keeps_a_stack_trace_cut_by_a_batch_boundary_in_one_event(client, bearer, api_service):
    trace = [
        "Traceback (most recent call last):",
        '  File "/app/pay.py", line 3, in charge',
        "    amount = order['amount']",
        "KeyError: 'amount'",
    ]
    # (seconds, message): the trace's lines share their second, as a logger writes them
    lines = [
        (0, "GET /a 200"),
        (1, "GET /b 200"),
        (2, "GET /c 200"),
        *[(3, t) for t in trace],
        (4, "GET /d 200"),
    ]
    body = b"\n".join(
        json.dumps(
            {"service": "api", "timestamp": (T0 + timedelta(seconds=s)).isoformat(), "message": m}
        ).encode()
        for s, m in lines
    )
    response = ingest(client, body, bearer("write"))
    assert response.json()["accepted"] == len(lines)
    stored = LogLine.objects.get(is_error=True)
    assert stored.message.startswith("Traceback") and stored.message.endswith("KeyError: 'amount'")
    assert LogLine.objects.count() == 5
