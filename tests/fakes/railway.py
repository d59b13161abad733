"""A fake Railway GraphQL API on a loopback port, routing by ``operationName``, quirks included.

Holds one project (``fake.project``) with environments, services and deployments, and a log store
per environment (``fake.add_log(...)``) and per deployment for HTTP logs. It reproduces:

- authentication: ``Project-Access-Token`` or ``Authorization: Bearer``; anything else gets
  Railway's HTML 403 page, not JSON;
- ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` on every answer, and
  429 with ``Retry-After`` once the hourly allowance (``fake.hourly_limit``) is spent;
- GraphQL errors inside HTTP 200 (``fake.fail_next("Problem processing request")``);
- log queries paged the way Railway pages them (``anchorDate`` with ``afterDate``/``afterLimit`` for
  what follows the anchor, ``beforeDate``/``beforeLimit`` for what precedes it; see ``_window``), answering
  ``limit + 1`` rows, oldest first;
- the ``filter`` variable in Railway's filter syntax (``_matches``): ``@level:error``, ``@key:value``,
  ``@httpStatus:>=500`` or ``500..599``, bare words and "quoted phrases" (substrings of the message),
  ``-`` for not, ``AND`` (or nothing) binding tighter than ``OR``, and parentheses;
- the "rate limit of 500 logs/sec reached for replica, update your application to reduce the logging
  rate. Messages dropped: N" line among the logs (``fake.add_drop_notice``).

``fake.requests`` records every operation name received, in order; ``fake.calls`` the same with the
variables of each.
"""

import contextlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.fakes.server import FakeServer, QuietHandler

TOKEN = "rw-project-token"
HTML_403 = (
    b"<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1></body></html>"
)


@dataclass
class FakeRailway:
    project_id: str = "prj-1"
    environments: dict = field(default_factory=lambda: {"env-prod": "production"})
    services: dict = field(default_factory=lambda: {"svc-api": "api", "svc-worker": "worker"})
    deployments: list = field(default_factory=list)  # dicts as the API returns them
    logs: dict = field(default_factory=dict)  # environment id -> list of log dicts
    http: dict = field(default_factory=dict)  # deployment id -> list of http log dicts
    hourly_limit: int = 1000
    retry_after: int = 1
    delay: float = 0.0  # seconds before every answer: a slow Railway, so a crawl is caught mid-way
    requests: list = field(default_factory=list)
    calls: list = field(default_factory=list)  # (operation, variables)
    _errors: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_log(
        self,
        environment: str,
        timestamp: datetime,
        message: str,
        *,
        severity: str = "info",
        service: str = "svc-api",
        deployment: str = "dep-1",
        **attributes,
    ) -> None:
        self.logs.setdefault(environment, []).append(
            {
                "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
                "message": message,
                "severity": severity,
                "tags": {"serviceId": service, "deploymentId": deployment, "deploymentInstanceId": "inst-1"},
                "attributes": [{"key": k, "value": str(v)} for k, v in attributes.items()],
            }
        )

    def add_drop_notice(
        self, environment: str, timestamp: datetime, dropped: int, service: str = "svc-api"
    ) -> None:
        self.add_log(
            environment,
            timestamp,
            "Railway rate limit of 500 logs/sec reached for replica, update your application to reduce the "
            f"logging rate. Messages dropped: {dropped}",
            severity="info",
            service=service,
        )

    def add_http(self, deployment: str, timestamp: datetime, status: int, path: str = "/") -> None:
        self.http.setdefault(deployment, []).append(
            {
                "requestId": f"req-{len(self.http.get(deployment, []))}",
                "timestamp": timestamp.isoformat(),
                "method": "GET",
                "path": path,
                "httpStatus": status,
                "totalDuration": 12,
                "srcIp": "10.0.0.1",
            }
        )

    def fail_next(self, message: str) -> None:
        """The next request answers HTTP 200 with a GraphQL error."""
        self._errors.append(message)

    # --- answering -----------------------------------------------------------------------------

    def answer(self, operation: str, variables: dict) -> dict:
        if operation == "Projects":
            return {
                "projects": {
                    "edges": [
                        {
                            "node": {
                                "id": self.project_id,
                                "name": "shop",
                                "environments": {
                                    "edges": [
                                        {"node": {"id": k, "name": v}} for k, v in self.environments.items()
                                    ]
                                },
                                "services": {
                                    "edges": [
                                        {"node": {"id": k, "name": v}} for k, v in self.services.items()
                                    ]
                                },
                            }
                        }
                    ]
                }
            }
        if operation == "Deployments":
            wanted = variables.get("input", {})
            rows = [d for d in self.deployments if d["serviceId"] == wanted.get("serviceId")]
            return {"deployments": {"edges": [{"node": d} for d in rows[: variables.get("first") or 10]]}}
        if operation == "EnvironmentLogs":
            rows = self.logs.get(variables["environmentId"], [])
            return {"environmentLogs": _window(_filtered(rows, variables.get("filter")), variables)}
        if operation == "HttpLogs":
            rows = self.http.get(variables["deploymentId"], [])
            return {"httpLogs": _window(_filtered(rows, variables.get("filter")), variables)}
        if operation in ("DeploymentLogs", "BuildLogs"):
            rows = [
                r
                for rows in self.logs.values()
                for r in rows
                if r["tags"]["deploymentId"] == variables["deploymentId"]
            ]
            key = "deploymentLogs" if operation == "DeploymentLogs" else "buildLogs"
            return {key: self._page(rows, None, variables.get("limit"))}
        raise KeyError(operation)

    @staticmethod
    def _page(rows: list, after: str | None, limit: int | None) -> list:
        """Rows after ``after`` (inclusive), oldest first, ``limit + 1`` of them."""
        if after:
            rows = [r for r in rows if _at(r["timestamp"]) >= _at(after)]
        rows = sorted(rows, key=lambda r: _at(r["timestamp"]))
        return rows[: (limit or 100) + 1]

    def handler(self) -> type:
        fake = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                auth = (
                    self.headers.get("Project-Access-Token") or (self.headers.get("Authorization") or "")[7:]
                )
                if auth != TOKEN:
                    return self._send(403, HTML_403, "text/html; charset=utf-8")
                if fake.delay:
                    time.sleep(fake.delay)
                with fake._lock:
                    fake.requests.append(body.get("operationName"))
                    fake.calls.append((body.get("operationName"), body.get("variables") or {}))
                    used = len(fake.requests)
                    error = fake._errors.pop(0) if fake._errors else None
                headers = {
                    "X-RateLimit-Limit": str(fake.hourly_limit),
                    "X-RateLimit-Remaining": str(max(fake.hourly_limit - used, 0)),
                    "X-RateLimit-Reset": "2026-05-01T13:00:00Z",
                }
                if used > fake.hourly_limit:
                    headers["Retry-After"] = str(fake.retry_after)
                    payload = {"errors": [{"message": "Rate limit exceeded"}]}
                    return self._send(429, json.dumps(payload).encode(), "application/json", headers)
                if error:
                    payload = {
                        "data": None,
                        "errors": [{"message": error, "extensions": {"code": "INTERNAL"}}],
                    }
                else:
                    try:
                        payload = {
                            "data": fake.answer(body.get("operationName"), body.get("variables") or {})
                        }
                    except KeyError as exc:
                        payload = {"errors": [{"message": f"Unknown operation {exc}"}]}
                self._send(200, json.dumps(payload).encode(), "application/json", headers)

            def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client killed mid-answer
                    self.wfile.write(body)

        return Handler

    def serve(self) -> FakeServer:
        return FakeServer(self.handler())


# --- Railway's paging and filter syntax ----------------------------------------------------------


def _at(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _window(rows: list, variables: dict) -> list:
    """Railway's anchored window: ``afterLimit`` rows from ``anchorDate`` (inclusive) up to ``afterDate``,
    oldest first (``limit + 1`` of them, the API's off-by-one), and the last ``beforeLimit`` rows before
    the anchor, back to ``beforeDate``. Without an anchor, the anchor is now: a client that sends only
    ``afterDate`` (the *latest* date after the anchor, not a start) gets nothing after it."""
    rows = sorted(rows, key=lambda r: _at(r["timestamp"]))
    anchor = _at(variables["anchorDate"]) if variables.get("anchorDate") else datetime.now(UTC)
    after, before = [], []
    if variables.get("afterLimit"):
        end = _at(variables["afterDate"]) if variables.get("afterDate") else None
        after = [
            r for r in rows if _at(r["timestamp"]) >= anchor and (end is None or _at(r["timestamp"]) <= end)
        ]
        after = after[: variables["afterLimit"] + 1]
    if variables.get("beforeLimit"):
        start = _at(variables["beforeDate"]) if variables.get("beforeDate") else None
        before = [
            r
            for r in rows
            if _at(r["timestamp"]) < anchor and (start is None or _at(r["timestamp"]) >= start)
        ]
        before = before[-variables["beforeLimit"] :]
    return before + after


_TOKEN = re.compile(r'\(|\)|-?"[^"]*"|[^\s()]+')


def _filtered(rows: list, expression: str | None) -> list:
    if not (expression or "").strip():
        return rows
    tokens = _TOKEN.findall(expression)
    return [r for r in rows if _matches(tokens, r)]


def _matches(tokens: list[str], row: dict) -> bool:
    """Evaluate a filter: OR of AND-groups of (possibly negated) terms, with parentheses."""
    position = 0

    def either() -> bool:
        nonlocal position
        value = both()
        while position < len(tokens) and tokens[position] == "OR":
            position += 1
            value = both() or value
        return value

    def both() -> bool:
        nonlocal position
        value = True
        while position < len(tokens) and tokens[position] not in ("OR", ")"):
            if tokens[position] == "AND":
                position += 1
                continue
            value = term() and value
        return value

    def term() -> bool:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "(":
            value = either()
            position += 1  # the closing parenthesis
            return value
        negate = token.startswith("-") and len(token) > 1
        return _term(token[1:] if negate else token, row) != negate

    return either()


def _term(token: str, row: dict) -> bool:
    if token.startswith("@") and ":" in token:
        key, wanted = token[1:].split(":", 1)
        return _field(key, wanted, row)
    text = token.strip('"').lower()
    return text in str(row.get("message") or row.get("path") or "").lower()


def _field(key: str, wanted: str, row: dict) -> bool:
    if key == "level":
        return str(row.get("severity", "")).lower() == wanted.lower()
    if key in ("httpStatus", "totalDuration") and key in row:
        value = int(row[key])
        if ".." in wanted:
            low, high = wanted.split("..", 1)
            return int(low) <= value <= int(high)
        for op, test in ((">=", int.__ge__), ("<=", int.__le__), (">", int.__gt__), ("<", int.__lt__)):
            if wanted.startswith(op):
                return test(value, int(wanted[len(op) :]))
        return value == int(wanted)
    tags = {"service": "serviceId", "deployment": "deploymentId", "replica": "deploymentInstanceId"}
    if key in tags:
        return (row.get("tags") or {}).get(tags[key]) == wanted
    attributes = {a["key"]: a["value"] for a in row.get("attributes") or [] if isinstance(a, dict)}
    value = attributes.get(key, row.get(key))
    return value is not None and str(value) == wanted
