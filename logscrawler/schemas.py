"""In/Out schemas of the logs API."""

from datetime import datetime
from typing import Literal

from ninja import Schema

from logscrawler.models import LogAlert


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
    status: str
    task_id: int | None


class TopErrorsOut(Schema):
    window: str
    items: list[TopErrorOut]


class SampleOut(Schema):
    timestamp: datetime
    message: str


class FingerprintOut(TopErrorOut):
    merged_into: int | None
    samples: list[SampleOut]


class AlertOut(Schema):
    id: int
    rule: str
    service: str
    fingerprint_id: int | None
    message: str
    opened_at: datetime
    closed_at: datetime | None

    @staticmethod
    def resolve_service(alert: LogAlert) -> str:
        return alert.service.name
