"""Stack traces are grouped by exception type and in-app frames, not by message or line numbers."""

import io
from datetime import timedelta

from django.core.management import call_command

from logscrawler import crawler
from logscrawler.fingerprint import Fingerprinter
from logscrawler.management.commands import import_logs
from logscrawler.models import CrawlRun, ErrorFingerprint, LogLine
from logscrawler.traces import parse_trace
from tests.logscrawler.crawling import NOW, client_for


def python_trace(message: str, line: int, function: str = "charge") -> str:
    return (
        "Traceback (most recent call last):\n"
        f'  File "/app/billing/views.py", line {line}, in {function}\n'
        "    total = order.total()\n"
        '  File "/usr/lib/python3.12/site-packages/django/db/models/query.py", line 91, in get\n'
        "    raise self.model.DoesNotExist\n"
        f"billing.models.Order.DoesNotExist: {message}"
    )


def test_it_groups_a_python_trace_by_type_and_app_frames():
    fp = Fingerprinter()
    first = fp.fingerprint(python_trace("Order 42 matching query does not exist.", 10))
    again = fp.fingerprint(python_trace("Order 977 matching query does not exist.", 14))
    elsewhere = fp.fingerprint(python_trace("Order 42 matching query does not exist.", 10, "refund"))
    assert first.exception_type == "billing.models.Order.DoesNotExist"
    assert first.id == again.id
    assert first.id != elsewhere.id
    assert "billing/views:charge" in first.template
    assert "django" not in first.template


def test_it_groups_node_java_and_go_traces():
    node = (
        "TypeError: Cannot read properties of undefined (reading '{field}')\n"
        "    at renderInvoice (/app/src/invoice.js:{line}:13)\n"
        "    at Layer.handle [as handle_request] (/app/node_modules/express/lib/router/layer.js:95:5)"
    )
    java = (
        "java.lang.IllegalStateException: pool {field} closed\n"
        "\tat com.acme.pay.Gateway.charge(Gateway.java:{line})\n"
        "\tat java.base/java.lang.Thread.run(Thread.java:833)"
    )
    go = (
        "panic: runtime error: index out of range [{line}] with length 3\n\n"
        "goroutine 1 [running]:\n"
        "main.pick({field})\n"
        "\t/app/main.go:{line} +0x1d\n"
        "main.main()\n"
        "\t/app/main.go:20 +0x25\n"
    )
    expected_types = {
        node: "TypeError",
        java: "java.lang.IllegalStateException",
        go: "panic: runtime error: index out of range [<*>] with length <*>",
    }
    for template, exception_type in expected_types.items():
        fp = Fingerprinter()
        # values in the message (ids, numbers) and line numbers differ: the same cause
        a = fp.fingerprint(template.format(field="user42", line=7))
        b = fp.fingerprint(template.format(field="user97", line=9))
        assert a.exception_type == exception_type
        assert a.id == b.id, template


def test_it_tells_different_exceptions_apart():
    fp = Fingerprinter()
    value_error = 'Traceback (most recent call last):\n  File "/app/a.py", line 1, in f\nValueError: bad'
    key_error = "Traceback (most recent call last):\n  File \"/app/a.py\", line 1, in f\nKeyError: 'x'"
    assert fp.fingerprint(value_error).id != fp.fingerprint(key_error).id


def test_it_finds_no_trace_in_a_plain_message():
    assert parse_trace("connection reset by peer") is None
    assert parse_trace("first line\nsecond line") is None


TRACE = [
    "Traceback (most recent call last):",
    '  File "/app/billing/views.py", line 10, in charge',
    "    total = order.total()",
    '  File "/app/billing/models.py", line 33, in total',
    "    return sum(line.amount for line in self.lines)",
    "TypeError: unsupported operand type(s) for +: 'int' and 'NoneType'",
]


def test_it_keeps_a_trace_cut_by_a_crawl_page_in_one_event(fake, db, settings):
    settings.LOGS_CRAWL_PAGE = 4
    start = NOW - timedelta(minutes=10)
    fake.add_log("env-prod", start, "charge 1 failed: card declined", severity="error")
    for n, line in enumerate(TRACE):  # one log row per line, as Railway stores stderr; pages cut it
        fake.add_log("env-prod", start + timedelta(seconds=2, milliseconds=n), line, severity="error")
    fake.add_log("env-prod", start + timedelta(seconds=5), "charge 2 failed: card declined", severity="error")
    run = crawler.crawl_run(client=client_for(fake), now=NOW)
    assert run.status == CrawlRun.Status.OK, run.errors
    traces = LogLine.objects.filter(message__startswith="Traceback")
    assert [line.message for line in traces] == ["\n".join(TRACE)] and run.lines == 8
    assert LogLine.objects.count() == 3 and not LogLine.objects.filter(message__startswith="  File").exists()
    assert ErrorFingerprint.objects.filter(exception_type="TypeError").count() == 1


def test_it_keeps_a_trace_cut_by_an_import_batch_in_one_event(db, tmp_path, monkeypatch):
    monkeypatch.setattr(import_logs, "BATCH", 6)  # cuts the trace, which follows its message
    path = tmp_path / "app.log"
    path.write_text("\n".join(["worker 1 started", "worker 2 started", *TRACE, "worker 3 started"]) + "\n")
    out = io.StringIO()
    call_command("import_logs", str(path), "--service", "app", stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "app: 9 stored, 0 duplicates, 0 rejected"
    messages = list(LogLine.objects.order_by("pk").values_list("message", flat=True))
    assert messages == ["worker 1 started", "\n".join(["worker 2 started", *TRACE]), "worker 3 started"]


def test_it_tells_apart_messages_of_another_template_at_the_same_place():
    fp = Fingerprinter()
    trace = "TypeError: Cannot read properties of undefined (reading '{}')\n    at render (/app/src/a.js:1:2)"
    assert fp.fingerprint(trace.format("id")).id != fp.fingerprint(trace.format("name")).id
