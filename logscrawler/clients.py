"""Railway's public GraphQL API (``RAILWAY_API_URL``): projects, deployments and their logs.

Pure I/O over the project's HTTP session; no models. Operation names are the ones Railway's own CLI
sends. What the API does that a naive client gets wrong, handled here:

- 429 with ``Retry-After`` (retried by the session, capped) and ``X-RateLimit-*`` headers, read into
  :attr:`RailwayClient.rate_limit` so the crawler can spend its hourly budget evenly;
- GraphQL errors inside an HTTP 200 (``{"errors": [...]}``), and an HTML 403 page instead of JSON;
- log queries paged from an anchor (``anchorDate``, ``afterDate`` as the window's end, ``afterLimit``),
  as Railway's CLI pages them, answering ``limit + 1`` rows, oldest first: the client keeps ``limit``
  and the caller's cursor moves only to the last row kept, so that row comes back next time (and is
  deduplicated);
- retries spent by the session (a 429 waited out) count against the cycle's request budget, and
  none is sent once the budget is spent.
"""

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from django.conf import settings

from juggernaut.http import HttpSession, http_session
from juggernaut.redaction import scrub_certain

# The line Railway writes into a log stream when it throttles it.
DROPPED_MARKER = "rate limit of"
DROPPED_SUFFIX = "Messages dropped"

_LOG_FIELDS = (
    "timestamp message severity tags { serviceId deploymentId deploymentInstanceId } attributes { key value }"
)
QUERIES = {
    "Projects": """query Projects {
  projects { edges { node { id name
    environments { edges { node { id name } } }
    services { edges { node { id name } } } } } } }""",
    "Deployments": """query Deployments($input: DeploymentListInput!, $first: Int) {
  deployments(input: $input, first: $first) { edges { node { id status createdAt serviceId environmentId } } } }""",
    "EnvironmentLogs": f"""query EnvironmentLogs($environmentId: String!, $filter: String, $afterDate: String,
  $afterLimit: Int, $beforeDate: String, $beforeLimit: Int, $anchorDate: String) {{
  environmentLogs(environmentId: $environmentId, filter: $filter, afterDate: $afterDate, afterLimit: $afterLimit,
    beforeDate: $beforeDate, beforeLimit: $beforeLimit, anchorDate: $anchorDate) {{ {_LOG_FIELDS} }} }}""",
    "HttpLogs": """query HttpLogs($deploymentId: String!, $filter: String, $afterDate: String, $afterLimit: Int,
  $beforeDate: String, $beforeLimit: Int, $anchorDate: String) {
  httpLogs(deploymentId: $deploymentId, filter: $filter, afterDate: $afterDate, afterLimit: $afterLimit,
    beforeDate: $beforeDate, beforeLimit: $beforeLimit, anchorDate: $anchorDate) {
    requestId timestamp method path httpStatus totalDuration srcIp } }""",
    "DeploymentLogs": f"""query DeploymentLogs($deploymentId: String!, $limit: Int, $filter: String) {{
  deploymentLogs(deploymentId: $deploymentId, limit: $limit, filter: $filter) {{ {_LOG_FIELDS} }} }}""",
    "BuildLogs": f"""query BuildLogs($deploymentId: String!, $limit: Int) {{
  buildLogs(deploymentId: $deploymentId, limit: $limit) {{ {_LOG_FIELDS} }} }}""",
}


class RailwayError(Exception):
    """Railway refused or failed. ``permanent``: retrying the same request cannot help."""

    def __init__(self, message: str, *, permanent: bool = False, status: int | None = None) -> None:
        super().__init__(scrub_certain(message))  # Railway's own text, which may quote the token
        self.permanent = permanent
        self.status = status


@dataclass(frozen=True, slots=True)
class LogRow:
    timestamp: datetime
    message: str
    severity: str
    service_id: str
    deployment_id: str
    attributes: dict

    @property
    def source_id(self) -> str:
        """Railway gives log rows no id: the same row always hashes the same."""
        seed = f"{self.deployment_id}\x00{self.timestamp.isoformat()}\x00{self.message}"
        return hashlib.sha256(seed.encode("utf-8", "replace")).hexdigest()[:40]

    @property
    def is_drop_notice(self) -> bool:
        return DROPPED_MARKER in self.message and DROPPED_SUFFIX in self.message


@dataclass(frozen=True, slots=True)
class HttpRow:
    timestamp: datetime
    method: str
    path: str
    status: int
    request_id: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    environments: dict[str, str]  # id -> name
    services: dict[str, str]  # id -> name


@dataclass
class RateLimit:
    limit: int | None = None
    remaining: int | None = None
    reset: str | None = None
    requests: int = 0  # sent by this client

    def read(self, headers) -> None:
        for name, attr in (("X-RateLimit-Limit", "limit"), ("X-RateLimit-Remaining", "remaining")):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                setattr(self, attr, int(headers[name]))
        self.reset = headers.get("X-RateLimit-Reset", self.reset)


def _forward(after: datetime, until: datetime, limit: int) -> dict:
    """Railway's paging forward in time: ``limit`` rows from the anchor (inclusive) up to ``afterDate``,
    the *latest* date wanted (not a start), and none before the anchor. Railway stamps lines in
    nanoseconds; ``until`` is sent as the last nanosecond of its microsecond, so that whole microsecond
    is in the window."""
    stamp = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return {
        "anchorDate": after.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "afterDate": f"{stamp}999Z",
        "afterLimit": limit,
        "beforeLimit": 0,
    }


def _time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _log_rows(items: list[dict], limit: int) -> list[LogRow]:
    rows = []
    for item in items or []:
        try:
            tags = item.get("tags") or {}
            rows.append(
                LogRow(
                    timestamp=_time(item["timestamp"]),
                    message=str(item.get("message") or ""),
                    severity=str(item.get("severity") or ""),
                    service_id=str(tags.get("serviceId") or ""),
                    deployment_id=str(tags.get("deploymentId") or ""),
                    attributes={a["key"]: a["value"] for a in item.get("attributes") or [] if "key" in a},
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # a row without a readable timestamp cannot be placed; the rest still counts
    rows.sort(key=lambda r: r.timestamp)
    return rows[:limit]


@dataclass
class RailwayClient:
    """One client per crawl cycle; ``budget`` caps the requests it may send (None: no cap)."""

    base_url: str = field(default_factory=lambda: settings.RAILWAY_API_URL)
    token: str = field(default_factory=lambda: settings.RAILWAY_TOKEN, repr=False)
    api_token: str = field(default_factory=lambda: settings.RAILWAY_API_TOKEN, repr=False)
    budget: int | None = None
    session: HttpSession = field(default_factory=http_session)
    rate_limit: RateLimit = field(default_factory=RateLimit)
    # Called before every request: the crawl cycle's heartbeat (it raises to stop the cycle).
    before_request: Callable[[], None] | None = None

    @property
    def configured(self) -> bool:
        return bool(self.token or self.api_token)

    def _headers(self) -> dict:
        if self.token:
            return {"Project-Access-Token": self.token}
        return {"Authorization": f"Bearer {self.api_token}"}

    def execute(self, operation: str, variables: dict | None = None) -> dict:
        """Run one named operation; its ``data``, or RailwayError."""
        if not self.configured:
            raise RailwayError("no Railway token: set RAILWAY_TOKEN or RAILWAY_API_TOKEN", permanent=True)
        if self.budget is not None and self.rate_limit.requests >= self.budget:
            raise RailwayError(f"this cycle's budget of {self.budget} requests is spent")
        if self.before_request is not None:
            self.before_request()
        body = {"operationName": operation, "query": QUERIES[operation], "variables": variables or {}}
        # every request the session sends counts, its retries included, and none may overdraw the budget
        before, spent = self.session.sent, self.rate_limit.requests
        self.session.may_retry = lambda: (
            self.budget is None or spent + self.session.sent - before < self.budget
        )
        try:
            response = self.session.post(self.base_url, json=body, headers=self._headers())
        except requests.RequestException as exc:
            raise RailwayError(f"Railway unreachable: {exc.__class__.__name__}") from exc
        finally:
            self.rate_limit.requests = spent + self.session.sent - before
        self.rate_limit.read(response.headers)
        if response.status_code == 429:
            raise RailwayError("Railway rate limit reached", status=429)
        if response.status_code in (401, 403):
            raise RailwayError(
                f"Railway refused the token ({response.status_code})",
                permanent=True,
                status=response.status_code,
            )
        if response.status_code >= 400:
            raise RailwayError(
                f"Railway answered {response.status_code}",
                status=response.status_code,
                permanent=response.status_code < 500,
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise RailwayError(
                "Railway answered something that is not JSON", status=response.status_code
            ) from exc
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if errors:
            message = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))[:500]
            lowered = message.lower()
            if "rate limit" in lowered:
                raise RailwayError(f"Railway rate limit: {message}", status=429)
            raise RailwayError(
                f"Railway: {message}", permanent="not authorized" in lowered or "not found" in lowered
            )
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise RailwayError("Railway answered without data")
        return data

    def projects(self) -> list[Project]:
        """Projects with their environments and services."""
        edges = (self.execute("Projects").get("projects") or {}).get("edges") or []
        out = []
        for edge in edges:
            node = edge.get("node") or {}
            envs = {
                e["node"]["id"]: e["node"]["name"] for e in (node.get("environments") or {}).get("edges", [])
            }
            svcs = {e["node"]["id"]: e["node"]["name"] for e in (node.get("services") or {}).get("edges", [])}
            out.append(Project(node.get("id", ""), node.get("name", ""), envs, svcs))
        return out

    def deployments(
        self, *, project_id: str, environment_id: str, service_id: str, first: int = 5
    ) -> list[dict]:
        """Latest deployments of a service (id, status, createdAt), newest first."""
        data = self.execute(
            "Deployments",
            {
                "input": {"projectId": project_id, "environmentId": environment_id, "serviceId": service_id},
                "first": first,
            },
        )
        return [e["node"] for e in (data.get("deployments") or {}).get("edges", []) if e.get("node")]

    def environment_logs(
        self, environment_id: str, *, after: datetime, until: datetime, limit: int, filter: str = ""
    ) -> list[LogRow]:
        """Logs of every service of an environment from ``after`` (inclusive) to ``until`` (the whole
        microsecond), oldest first, at most ``limit``."""
        data = self.execute(
            "EnvironmentLogs",
            {"environmentId": environment_id, "filter": filter, **_forward(after, until, limit)},
        )
        return _log_rows(data.get("environmentLogs"), limit)

    def http_logs(
        self, deployment_id: str, *, after: datetime, until: datetime, limit: int, filter: str = ""
    ) -> list[HttpRow]:
        """HTTP requests of a deployment from ``after`` to ``until``, oldest first, at most ``limit``
        (``filter`` e.g. ``@httpStatus:>=500``)."""
        data = self.execute(
            "HttpLogs", {"deploymentId": deployment_id, "filter": filter, **_forward(after, until, limit)}
        )
        rows = []
        for item in data.get("httpLogs") or []:
            try:
                rows.append(
                    HttpRow(
                        _time(item["timestamp"]),
                        str(item.get("method", "")),
                        str(item.get("path", "")),
                        int(item["httpStatus"]),
                        str(item.get("requestId", "")),
                        int(item.get("totalDuration") or 0),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
        rows.sort(key=lambda r: r.timestamp)
        return rows[:limit]

    def deployment_logs(self, deployment_id: str, *, limit: int) -> list[LogRow]:
        """The runtime logs of one deployment (backfill after a failed deploy)."""
        return _log_rows(
            self.execute("DeploymentLogs", {"deploymentId": deployment_id, "limit": limit}).get(
                "deploymentLogs"
            ),
            limit,
        )

    def build_logs(self, deployment_id: str, *, limit: int) -> list[LogRow]:
        """The build output of one deployment."""
        return _log_rows(
            self.execute("BuildLogs", {"deploymentId": deployment_id, "limit": limit}).get("buildLogs"), limit
        )
