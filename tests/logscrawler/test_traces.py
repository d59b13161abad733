"""Stack traces are grouped by exception type and in-app frames, not by message or line numbers."""

from logscrawler.fingerprint import Fingerprinter
from logscrawler.traces import parse_trace


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
        a = fp.fingerprint(template.format(field="id", line=7))
        b = fp.fingerprint(template.format(field="name", line=9))
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
