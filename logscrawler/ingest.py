"""Reading NDJSON log lines ``{service, timestamp, message, severity?, attributes?, id?}``.

Each bad line is reported by its number with the reason, and the good ones are kept: one broken
line never costs the rest of the batch.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime

from logscrawler.services import Record, text_clean


@dataclass
class Parsed:
    items: list[tuple[int, str, Record]] = field(default_factory=list)  # (line number, service, record)
    rejected: list[dict] = field(default_factory=list)

    def reject(self, line: int, error: str) -> None:
        self.rejected.append({"line": line, "error": error})


def _timestamp(value) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # epoch seconds, or milliseconds when it is too large to be seconds
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    if not isinstance(value, str):
        raise ValueError("timestamp must be an ISO 8601 string or epoch seconds")
    parsed = parse_datetime(value.strip())
    if parsed is None:
        raise ValueError(f"timestamp {value[:40]!r} is not ISO 8601")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _attributes_clean(attributes: dict) -> dict:
    """Attributes as JSON the database takes: no NUL, no lone surrogates, bounded in size."""
    if not attributes:
        return {}
    dumped = json.dumps(attributes, ensure_ascii=False).replace("\\u0000", "\\ufffd")
    dumped = text_clean(dumped)
    try:
        return json.loads(dumped)
    except ValueError:  # cut by text_clean: keep it readable, not structured
        return {"truncated": dumped}


def record_from_object(data) -> tuple[str, Record]:
    """The service name and record of one decoded line; ValueError says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("each line must be a JSON object")
    service = data.get("service")
    if not isinstance(service, str) or not service.strip() or len(service) > 120:
        raise ValueError("service must be a name of 1 to 120 characters")
    message = data.get("message")
    if not isinstance(message, str):
        raise ValueError("message must be a string")
    if "timestamp" not in data:
        raise ValueError("timestamp is required")
    severity = data.get("severity") or ""
    if not isinstance(severity, str):
        raise ValueError("severity must be a string")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise ValueError("attributes must be an object")
    source_id = data.get("id") or ""
    if not isinstance(source_id, str | int):
        raise ValueError("id must be a string")
    record = Record(
        timestamp=_timestamp(data["timestamp"]),
        message=text_clean(message),
        severity=text_clean(severity)[:32],
        attributes=_attributes_clean(attributes),
        source_id=str(source_id)[:200],
    )
    return service.strip(), record


def parse_ndjson(body: bytes) -> Parsed:
    """Decode every line of an NDJSON body; blank lines are skipped."""
    parsed = Parsed()
    for number, raw in enumerate(body.split(b"\n"), start=1):
        raw = raw.strip(b"\r \t")
        if not raw:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            parsed.reject(number, "the line is not valid UTF-8")
            continue
        try:
            data = json.loads(text)
        except ValueError:
            parsed.reject(number, "the line is not valid JSON")
            continue
        try:
            service, record = record_from_object(data)
        except (ValueError, OverflowError, OSError) as exc:
            parsed.reject(number, str(exc))
            continue
        parsed.items.append((number, service, record))
    return parsed
