"""A fake Railway GraphQL API on a loopback port, routing by ``operationName``, quirks included.

Holds one project (``fake.project``) with environments, services and deployments, and a log store
per environment (``fake.add_log(...)``) and per deployment for HTTP logs. It reproduces:

- authentication: ``Project-Access-Token`` or ``Authorization: Bearer``; anything else gets
  Railway's HTML 403 page, not JSON;
- ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` on every answer, and
  429 with ``Retry-After`` once the hourly allowance (``fake.hourly_limit``) is spent;
- GraphQL errors inside HTTP 200 (``fake.fail_next("Problem processing request")``);
- log queries that answer ``limit + 1`` rows, oldest first;
- the "rate limit of 500 logs/sec reached for replica, update your application to reduce the logging
  rate. Messages dropped: N" line among the logs (``fake.add_drop_notice``).

``fake.requests`` records every operation name received, in order.
"""

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime

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
    requests: list = field(default_factory=list)
    _errors: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_log(self, environment: str, timestamp: datetime, message: str, *, severity: str = "info",
                service: str = "svc-api", deployment: str = "dep-1", **attributes) -> None:  # fmt: skip
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
            {"requestId": f"req-{len(self.http.get(deployment, []))}", "timestamp": timestamp.isoformat(),
             "method": "GET", "path": path, "httpStatus": status, "totalDuration": 12, "srcIp": "10.0.0.1"}
        )  # fmt: skip

    def fail_next(self, message: str) -> None:
        """The next request answers HTTP 200 with a GraphQL error."""
        self._errors.append(message)

    # --- answering -----------------------------------------------------------------------------

    def answer(self, operation: str, variables: dict) -> dict:
        if operation == "Projects":
            return {"projects": {"edges": [{"node": {
                "id": self.project_id, "name": "shop",
                "environments": {"edges": [{"node": {"id": k, "name": v}} for k, v in self.environments.items()]},
                "services": {"edges": [{"node": {"id": k, "name": v}} for k, v in self.services.items()]},
            }}]}}  # fmt: skip
        if operation == "Deployments":
            wanted = variables.get("input", {})
            rows = [d for d in self.deployments if d["serviceId"] == wanted.get("serviceId")]
            return {"deployments": {"edges": [{"node": d} for d in rows[: variables.get("first") or 10]]}}
        if operation == "EnvironmentLogs":
            rows = self.logs.get(variables["environmentId"], [])
            return {
                "environmentLogs": self._page(rows, variables.get("afterDate"), variables.get("afterLimit"))
            }
        if operation == "HttpLogs":
            rows = self.http.get(variables["deploymentId"], [])
            return {"httpLogs": self._page(rows, variables.get("afterDate"), variables.get("limit"))}
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
        """Rows after ``after`` (inclusive, as Railway does), oldest first, ``limit + 1`` of them."""
        if after:
            cutoff = datetime.fromisoformat(after.replace("Z", "+00:00"))
            rows = [
                r for r in rows if datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) >= cutoff
            ]
        rows = sorted(rows, key=lambda r: r["timestamp"])
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
                with fake._lock:
                    fake.requests.append(body.get("operationName"))
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
                self.wfile.write(body)

        return Handler

    def serve(self) -> FakeServer:
        return FakeServer(self.handler())
