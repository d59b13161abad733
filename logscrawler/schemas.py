"""In/Out schemas of the logs API."""

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from juggernaut.schemas import Choice
from logscrawler.models import AlertRule, FingerprintStatus, LogAlert


class IngestLineIn(Schema):
    """One line of an ingest body (a JSON object per line). A line that does not fit is rejected on its
    own, listed in the answer; the others are stored."""

    service: str | int = Field(description="a known service's name, 1 to 120 printable characters")
    timestamp: str | float = Field(description="ISO 8601 (UTC when it has no offset), or epoch seconds or ms")
    message: str
    severity: str | None = Field(None, description="as the source says it (`error`, `warn`...)")
    attributes: dict[str, Any] | None = None
    id: str | int | None = Field(
        None, description="the source's id of the line: a line sent again is a duplicate"
    )


class RejectedLine(Schema):
    line: int
    error: str


class IngestOut(Schema):
    accepted: int
    duplicates: int
    rejected: list[RejectedLine]
    rejected_more: int = 0  # rejected lines beyond the ones listed (LOGS_INGEST_MAX_REJECTED)


class TopErrorsQuery(Schema):
    window: Literal["1h", "24h"] = "1h"
    service: str | None = None


class TopErrorOut(Schema):
    fingerprint_id: int
    service: str
    template: str
    exception_type: str
    count: int
    first_seen: datetime
    last_seen: datetime
    status: Choice(FingerprintStatus.values)  # type: ignore[valid-type]
    task_id: int | None


class TopErrorsOut(Schema):
    window: Choice(["1h", "24h"])  # type: ignore[valid-type]
    items: list[TopErrorOut]


class SampleOut(Schema):
    timestamp: datetime
    message: str


class FingerprintOut(TopErrorOut):
    merged_into: int | None
    samples: list[SampleOut]


class AlertOut(Schema):
    id: int
    rule: Choice(AlertRule.values)  # type: ignore[valid-type]
    service: str
    fingerprint_id: int | None
    message: str
    opened_at: datetime
    closed_at: datetime | None

    @staticmethod
    def resolve_service(alert: LogAlert) -> str:
        return alert.service.name
