"""Parsing records: errors from severity, level words and HTTP status; JSON lines; folded traces."""

import json

from logscrawler.fingerprint import Fingerprinter
from logscrawler.parser import fold, parse_record

PYTHON_TRACE = """ERROR something failed while charging
Traceback (most recent call last):
  File "/app/billing/views.py", line 10, in charge
    total = order.total()
  File "/app/billing/models.py", line 44, in total
    return sum(line.amount for line in self.lines)
TypeError: unsupported operand type(s) for +: 'int' and 'NoneType'"""

NODE_TRACE = """TypeError: Cannot read properties of undefined (reading 'id')
    at renderInvoice (/app/src/invoice.js:12:13)
    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"""

JAVA_TRACE = """Exception in thread "main" java.lang.IllegalStateException: pool closed
\tat com.acme.pay.Gateway.charge(Gateway.java:42)
\tat com.acme.pay.Main.main(Main.java:7)
Caused by: java.io.IOException: broken pipe
\tat com.acme.pay.Pool.take(Pool.java:88)
\t... 2 more"""

GO_TRACE = """panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.pick(...)
\t/app/main.go:12 +0x1d
main.main()
\t/app/main.go:20 +0x25
exit status 2"""


def events_of(text: str) -> list:
    """Deliver a text the way a line-by-line source does: one record per line."""
    return list(fold(parse_record(line) for line in text.split("\n")))


def test_it_detects_errors_from_severity_level_words_and_http_status():
    assert parse_record("disk almost full", severity="error").is_error
    assert parse_record("2024-05-01 12:00:00 ERROR payment failed").is_error
    assert (
        parse_record('10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET /pay HTTP/1.1" 502 12').http_status
        == 502
    )
    assert parse_record('10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET /pay HTTP/1.1" 502 12').is_error
    assert parse_record("request done status=503 in 20ms").is_error
    assert not parse_record('"GET / HTTP/1.1" 200 512').is_error
    assert not parse_record("2024-05-01 12:00:00 INFO all good").is_error
    assert parse_record("panic: nil map").is_error
    assert not parse_record("request took 500 ms").is_error


def test_it_understands_json_lines():
    event = parse_record(json.dumps({"msg": "charge failed", "level": 50, "order": 42}))
    assert (event.message, event.level, event.is_error) == ("charge failed", "error", True)
    assert event.attributes["order"] == 42
    event = parse_record(json.dumps({"message": "ok", "severity": "INFO", "status": 201}))
    assert (event.level, event.http_status, event.is_error) == ("info", 201, False)
    stacked = parse_record(
        json.dumps({"message": "render failed", "level": "error", "error": {"stack": NODE_TRACE}})
    )
    assert stacked.text.startswith("render failed\nTypeError: Cannot read")
    assert Fingerprinter(raw=True).fingerprint(stacked.text).exception_type == "TypeError"
    assert parse_record("{not json").message == "{not json"


def test_it_understands_logfmt_lines():
    event = parse_record('ts=2024-05-01T12:00:00Z level=error msg="db timeout after 30s" status=503 req=abc')
    assert (event.message, event.level, event.http_status, event.is_error) == (
        "db timeout after 30s",
        "error",
        503,
        True,
    )
    assert event.attributes["req"] == "abc"
    assert parse_record("level=info msg=started").level == "info"


def test_it_folds_traces_delivered_line_by_line():
    for trace, exception_type in (
        (PYTHON_TRACE, "TypeError"),
        (NODE_TRACE, "TypeError"),
        (JAVA_TRACE, "java.lang.IllegalStateException"),
        (GO_TRACE, "panic: runtime error: index out of range [<*>] with length <*>"),
    ):
        before = parse_record("INFO service started")
        after = parse_record("INFO next request")
        events = list(fold([before, *(parse_record(line) for line in trace.split("\n")), after]))
        assert len(events) == 3, [e.text for e in events]
        folded = events[1]
        assert folded.text == trace and folded.is_error
        assert Fingerprinter(raw=True).fingerprint(folded.text).exception_type == exception_type


def test_it_keeps_a_trace_sent_as_one_record_whole():
    events = list(fold([parse_record(JAVA_TRACE), parse_record("INFO next")]))
    assert len(events) == 2
    assert events[0].lines == 1 and "Caused by" in events[0].text


def test_it_does_not_fold_two_separate_errors():
    events = events_of("ERROR first failure\nERROR second failure")
    assert [e.message for e in events] == ["first failure", "second failure"]


def test_it_groups_the_same_python_bug_from_two_requests():
    fp = Fingerprinter(raw=True)
    first = events_of(PYTHON_TRACE)[0]
    second = events_of(PYTHON_TRACE.replace("line 10", "line 11").replace("line 44", "line 52"))[0]
    assert fp.fingerprint(first.text).id == fp.fingerprint(second.text).id
    assert first.headline.startswith("TypeError: unsupported operand")
