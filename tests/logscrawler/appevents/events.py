"""Application error events of every format the folder handles, written from the runtimes' documented
output (CPython's traceback module, Node's util.inspect of errors, Go's runtime and net/http, the JDK's
Throwable.printStackTrace, psycopg's diagnostics), each with the group an engineer would put it in.

``cases()`` gives (group, service, text) in a fixed order; ``records()`` turns them into ingest NDJSON
records, half delivered as one message with newlines and half one record per line (continuation lines
with another severity), with another service's lines interleaved.
"""

import json
from datetime import UTC, datetime, timedelta

from tests.logscrawler.loghub import grouping_accuracy

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

PY_TIMEOUT = """Traceback (most recent call last):
  File "/app/.venv/lib/python3.12/site-packages/django/db/backends/utils.py", line 105, in _execute
    return self.cursor.execute(sql, params)
psycopg.errors.QueryCanceled: canceling statement due to statement timeout

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/app/shop/views.py", line {line}, in {view}
    orders = list(Order.objects.filter(user=request.user))
  File "/app/.venv/lib/python3.12/site-packages/django/db/models/query.py", line 400, in __iter__
    self._fetch_all()
django.db.utils.OperationalError: canceling statement due to statement timeout
CONTEXT:  while executing query on relation "shop_order" id {oid}"""

PY_REFUSED = """Traceback (most recent call last):
  File "/app/shop/views.py", line {line}, in order_list
    orders = list(Order.objects.filter(user=request.user))
  File "/app/.venv/lib/python3.12/site-packages/psycopg/connection.py", line 119, in connect
    raise last_ex.with_traceback(None)
psycopg.OperationalError: connection failed: connection to server at "10.0.{a}.{b}", port 5432 failed: Connection refused
\tIs the server running on that host and accepting TCP/IP connections?"""

PY_UNIQUE = """Traceback (most recent call last):
  File "/app/accounts/views.py", line {line}, in signup
    user = User.objects.create(email=email)
psycopg.errors.UniqueViolation: duplicate key value violates unique constraint "accounts_user_email_key"
DETAIL:  Key (email)=({user}@example.com) already exists."""

PY_CHAIN = """Traceback (most recent call last):
  File "/app/billing/charge.py", line {line}, in charge
    amount = int(payload["amount"])
KeyError: 'amount'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/billing/views.py", line 31, in pay
    charge(request.json)
  File "/app/billing/charge.py", line 40, in charge
    raise ValueError(f"bad payload for order {{order}}")
ValueError: bad payload for order {oid}"""

NODE_TYPE = """TypeError: Cannot read properties of undefined (reading '{prop}')
    at renderInvoice (/app/.next/server/chunks/{chunk}.js:12:{col})
    at async Promise.all (index 0)
    at async handler (/app/.next/server/pages/api/invoice.js:1:{col})"""

NODE_REFUSED = """Error: connect ECONNREFUSED 10.0.{a}.{b}:6379
    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16) {{
  errno: -111,
  code: 'ECONNREFUSED',
  syscall: 'connect',
  address: '10.0.{a}.{b}',
  port: 6379
}}"""

NODE_CAUSE = """Error: failed to load user {user}
    at loadUser (/app/src/users.js:{line}:11)
    at async /app/src/routes/profile.js:22:18 {{
  [cause]: SyntaxError: Unexpected token < in JSON at position {pos}
      at JSON.parse (<anonymous>)
      at parseBody (/app/src/http.js:8:20)
}}"""

GO_PANIC = """http: panic serving 10.0.{a}.{b}:{port}: runtime error: index out of range [{i}] with length {n}
goroutine {g} [running]:
net/http.(*conn).serve.func1()
\t/usr/local/go/src/net/http/server.go:1868 +0xb9
panic({{0x6d0b20?, 0xc000012345?}})
\t/usr/local/go/src/runtime/panic.go:920 +0x270
main.(*Server).handleOrder(0xc0000a4000, {{0x7f1c60, 0xc0000c0000}}, 0xc0000b2000)
\t/app/server.go:{line} +0x1f4
net/http.HandlerFunc.ServeHTTP(0xc0000a6010?, {{0x7f1c60?, 0xc0000c0000?}}, 0x0?)
\t/usr/local/go/src/net/http/server.go:2136 +0x29"""

GO_NIL = """panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x{addr} pc=0x4a1b2c]

goroutine 1 [running]:
main.loadConfig(...)
\t/app/config.go:{line}
main.main()
\t/app/main.go:12 +0x1d

goroutine 6 [select]:
database/sql.(*DB).connectionOpener(0xc000118000, {{0x7f2a40, 0xc00011a000}})
\t/go/pkg/mod/github.com/lib/pq@v1.10.9/conn.go:1218 +0x87
created by database/sql.OpenDB in goroutine 1
\t/usr/local/go/src/database/sql/sql.go:791 +0x18d
exit status 2"""

JAVA_NPE = """Exception in thread "http-nio-8080-exec-{t}" java.lang.IllegalStateException: order {oid} has no lines
\tat com.acme.shop.OrderService.total(OrderService.java:{line})
\tat com.acme.shop.OrderController.show(OrderController.java:58)
\tat java.base/java.lang.Thread.run(Thread.java:1583)
Caused by: java.lang.NullPointerException: Cannot invoke "java.util.List.size()" because "lines" is null
\tat com.acme.shop.Order.lineCount(Order.java:{line2})
\t... 3 more
\tSuppressed: java.io.IOException: stream closed
\t\tat com.acme.shop.Audit.close(Audit.java:12)
\t\t... 4 more"""

JAVA_ERROR_HEADING = """Error: request {rid} failed
java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after {ms}ms.
\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)
\tat com.acme.shop.OrderRepository.find(OrderRepository.java:{line})"""

BLOCK_MIGRATE = """migration failed for tenant {tenant}:
    relation "billing_invoice" does not exist
    while applying 0042_invoice_total"""

BLOCK_CONFIG = """migration failed for tenant {tenant}:
    column "total" of relation "billing_invoice" already exists
    while applying 0043_invoice_total_cents"""


def cases() -> list[tuple[str, str, str]]:
    """(expected group, service, event text), three or four events per group with other values."""
    out = []
    for n in range(3):
        out += [
            ("py-timeout-list", "shop", PY_TIMEOUT.format(line=40 + n, view="order_list", oid=100 + n)),
            ("py-timeout-detail", "shop", PY_TIMEOUT.format(line=70, view="order_detail", oid=7 * n)),
            ("py-refused", "shop", PY_REFUSED.format(line=40 + n, a=n, b=n * 3)),
            ("py-unique", "shop", PY_UNIQUE.format(line=12, user=f"user{n}")),
            ("py-chain", "shop", PY_CHAIN.format(line=9 + n, oid=1000 + n)),
            ("node-type-id", "web", NODE_TYPE.format(prop="id", chunk=412 + n, col=10 + n)),
            ("node-type-name", "web", NODE_TYPE.format(prop="name", chunk=412, col=5)),
            ("node-refused", "web", NODE_REFUSED.format(a=n, b=n + 1)),
            ("node-cause", "web", NODE_CAUSE.format(user=n * 11, line=30 + n, pos=n)),
            (
                "go-panic",
                "api",
                GO_PANIC.format(a=n, b=2, port=40000 + n, i=n + 3, n=n + 1, g=20 + n, line=88),
            ),
            ("go-nil", "api", GO_NIL.format(addr=n * 8, line=30)),
            ("java-ise", "jvm", JAVA_NPE.format(t=n + 1, oid=n + 50, line=101, line2=22)),
            ("java-hikari", "jvm", JAVA_ERROR_HEADING.format(rid=n + 900, ms=30000 + n, line=40)),
            ("block-missing", "worker", BLOCK_MIGRATE.format(tenant=f"t{n}")),
            ("block-exists", "worker", BLOCK_CONFIG.format(tenant=f"t{n}")),
            (
                "access-order-5xx",
                "web",
                f"GET /api/orders/{n * 37 + 1} {500 + n * 2} {12 + n}ms request_id=r{n}x",
            ),
            ("access-cart-5xx", "web", f'"POST /api/carts/{n}f3a9c1b2d4e/items?src=app HTTP/1.1" 502 {n}'),
        ]
    return out


def records() -> tuple[list[dict], list[tuple[int, str] | None]]:
    """Ingest records for every case, and the (case number, expected group) of each record (None: a
    line that is not an error)."""
    out: list[dict] = []
    expected: list[tuple[int, str] | None] = []
    at = T0
    for number, (group, service, text) in enumerate(cases()):
        at += timedelta(seconds=1)
        if number % 2 == 0:  # one message with newlines
            out.append(
                {"service": service, "timestamp": at.isoformat(), "message": text, "severity": "error"}
            )
            expected.append((number, group))
            continue
        # one record per line, a millisecond apart; frames often come with another severity
        for index, line in enumerate(text.split("\n")):
            stamp = (at + timedelta(milliseconds=index)).isoformat()
            severity = "error" if index == 0 else ("info" if index % 3 else "warning")
            out.append({"service": service, "timestamp": stamp, "message": line, "severity": severity})
            expected.append((number, group))
            if index == 2:  # another service speaks in the middle of the trace
                out.append({"service": "proxy", "timestamp": stamp, "message": f"GET /health 200 {number}ms"})
                expected.append(None)
    return out, expected


def ndjson() -> bytes:
    lines, _ = records()
    return b"\n".join(json.dumps(line).encode() for line in lines)


def event_accuracy(expected: list[tuple[int, str] | None], fingerprints: list[str]) -> float:
    """Grouping accuracy over events: an event is right when all its records carry one fingerprint and
    that fingerprint holds exactly the events of its expected group (an event cut apart is wrong)."""
    per_case: dict[int, set[str]] = {}
    group_of: dict[int, str] = {}
    for item, fingerprint in zip(expected, fingerprints, strict=True):
        if item is not None:
            per_case.setdefault(item[0], set()).add(fingerprint)
            group_of[item[0]] = item[1]
    predicted = [found.pop() if len(found) == 1 else f"cut-{case}" for case, found in per_case.items()]
    return grouping_accuracy(predicted, [group_of[case] for case in per_case])
