"""Reading NDJSON log lines ``{service, timestamp, message, severity?, attributes?, id?}``.

Each bad line is reported by its number with the reason, and the good ones are kept: one broken
line never costs the rest of the batch. Whatever a line holds (deep nesting, NUL, lone surrogates,
non-finite numbers, dates no database stores), it is either stored or rejected on its own.

Memory and locks stay bounded by design: the body is read line by line, each service's lines are
stored ``LOGS_INGEST_BATCH_LINES`` at a time in their own transaction, and the answer lists at most
``LOGS_INGEST_MAX_REJECTED`` rejected lines (the first ones) and counts the rest.
"""

import heapq
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils.dateparse import parse_datetime

from logscrawler import services
from logscrawler.fingerprint import Fingerprinter
from logscrawler.models import LogService
from logscrawler.parser import JSONTooDeep, json_loads_bounded
from logscrawler.pipeline import events_fingerprint, events_fold
from logscrawler.services import Record, record_dedupe, record_fields, text_clean

log = logging.getLogger(__name__)

# What every database stores and every date computation (minute rollups, alert windows) survives.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass
class Rejections:
    """The rejected lines: the ``limit`` lowest line numbers with their reasons, and a count of all."""

    limit: int
    total: int = 0
    _heap: list[tuple[int, str]] = field(default_factory=list)  # (-line, reason): the highest on top

    def add(self, line: int, error: str) -> None:
        self.total += 1
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, (-line, error))
        elif self._heap and -self._heap[0][0] > line:
            heapq.heapreplace(self._heap, (-line, error))

    def listed(self) -> list[dict]:
        return [{"line": -neg, "error": error} for neg, error in sorted(self._heap, reverse=True)]


def _in_range(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)  # OverflowError past year 9999: refused with the line
    if not EARLIEST <= moment < LATEST:
        raise ValueError("timestamp must lie between 1970 and 9998")
    return moment


def _timestamp(value) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # epoch seconds, or milliseconds when it is too large to be seconds
        seconds = value / 1000 if value > 1e11 else value
        return _in_range(datetime.fromtimestamp(seconds, tz=UTC))
    if not isinstance(value, str):
        raise ValueError("timestamp must be an ISO 8601 string or epoch seconds")
    parsed = parse_datetime(value.strip())
    if parsed is None:
        raise ValueError(f"timestamp {text_clean(value[:40])!r} is not ISO 8601")
    return _in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def _name(value, what: str, *, longest: int) -> str:
    """An identifier from outside (service, id): printable text the database stores as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > longest:
        raise ValueError(f"{what} must be a name of 1 to {longest} characters")
    if not value.isprintable():
        raise ValueError(f"{what} must not contain NUL or other control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode (it holds a lone surrogate)") from None
    return value.strip()


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
    service = _name(data.get("service"), "service", longest=120)
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
    if isinstance(source_id, str):
        source_id = source_id[:200]
    record = Record(
        timestamp=_timestamp(data["timestamp"]),
        message=text_clean(message),
        severity=text_clean(severity)[:32],
        attributes=_attributes_clean(attributes),
        source_id=_name(source_id, "id", longest=200) if source_id != "" else "",
    )
    return service, record


def line_read(raw: bytes) -> tuple[str, Record]:
    """One NDJSON line as (service, record); ValueError says why it is refused."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the line is not valid UTF-8") from None
    try:
        data = json_loads_bounded(text)
    except JSONTooDeep:
        raise
    except ValueError:
        raise ValueError("the line is not valid JSON") from None
    return record_from_object(data)


# Where an operator adds a service when ingest may not create them (LOGS_INGEST_CREATE_SERVICES off).
WHERE_TO_ADD = 'add it under System Health (/logs/, "Add service") or in the admin'


@dataclass
class IngestSummary:
    accepted: int = 0
    duplicates: int = 0
    unknown_services: int = 0  # lines refused because their service does not exist
    rejected: Rejections = field(default_factory=lambda: Rejections(settings.LOGS_INGEST_MAX_REJECTED))

    @property
    def only_unknown_services(self) -> bool:
        """Nothing stored, and every refusal for want of a service: the sender must add it first."""
        return not self.accepted and not self.duplicates and self.unknown_services == self.rejected.total > 0

    def as_dict(self) -> dict:
        listed = self.rejected.listed()
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": listed,
            "rejected_more": self.rejected.total - len(listed),
        }


class _Batcher:
    """Each service's pending lines, stored a bounded batch at a time."""

    def __init__(self, summary: IngestSummary) -> None:
        self.summary = summary
        self.size = max(settings.LOGS_INGEST_BATCH_LINES, 1)
        self.known: dict[str, LogService | None] = {}
        self.pending: dict[str, list[tuple[int, Record]]] = {}

    def add(self, number: int, name: str, record: Record) -> None:
        if name not in self.known:
            if len(self.known) >= 10_000:  # a sender inventing names: stop remembering the misses
                self.known = {k: v for k, v in self.known.items() if v is not None}
            found = services.services_by_name({name}).get(name)
            if found is None and settings.LOGS_INGEST_CREATE_SERVICES:
                found = services.service_for_import(name)
            self.known[name] = found
        if self.known[name] is None:
            self.summary.unknown_services += 1
            self.summary.rejected.add(number, f"unknown service {name[:120]!r}: {WHERE_TO_ADD}")
            return
        batch = self.pending.setdefault(name, [])
        batch.append((number, record))
        grown = len(batch) - self.size
        if grown >= 0 and grown % max(self.size // 4, 1) == 0:
            # The last event may go on in the next lines (a stack trace): it waits for them, unless
            # the batch is all one event and has grown to twice its size (looked at again after
            # each quarter of a batch, as import_logs does).
            cut = services.open_event_start([r for _, r in batch])
            if cut == 0 and len(batch) < 2 * self.size:
                return
            cut = cut or len(batch)
            self._store(name, batch[:cut])
            self.pending[name] = batch[cut:]

    def flush(self) -> None:
        for name, batch in self.pending.items():
            if batch:
                self._store(name, batch)
        self.pending.clear()

    def _store(self, name: str, batch: list[tuple[int, Record]]) -> None:
        service = self.known[name]
        try:
            self._count(services.logs_ingest(service, [record for _, record in batch]))
            return
        except (OperationalError, InterfaceError):
            raise  # the database is away: the whole request answers 503 and the sender retries
        except Exception:  # a line no check foresaw: find it, keep the others
            log.warning("a batch of %d lines for %s failed; storing them one by one", len(batch), name)
        for number, record in batch:
            try:
                self._count(services.logs_ingest(service, [record]))
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:  # this line alone is refused
                log.warning("line %d for %s could not be stored: %s", number, name, type(exc).__name__)
                self.summary.rejected.add(number, "the line could not be stored")

    def _count(self, result) -> None:
        self.summary.accepted += result.accepted
        self.summary.duplicates += result.duplicates


def ndjson_ingest(lines: Iterable[bytes]) -> IngestSummary:
    """Read and store NDJSON lines as they come; each bad line is rejected alone, by its number."""
    summary = IngestSummary()
    batcher = _Batcher(summary)
    for number, raw in enumerate(lines, start=1):
        raw = raw.strip(b"\r\n \t")
        if not raw:
            continue
        try:
            name, record = line_read(raw)
        except (ValueError, OverflowError, OSError) as exc:
            summary.rejected.add(number, str(exc))
            continue
        except Exception as exc:  # a line no check foresaw is refused alone
            log.warning("line %d could not be read: %s", number, type(exc).__name__)
            summary.rejected.add(number, "the line could not be read")
            continue
        batcher.add(number, name, record)
    batcher.flush()
    return summary


def ndjson_fingerprint(lines: Iterable[bytes]) -> tuple[list[str], list[tuple[int, str]]]:
    """The fingerprint of every NDJSON line as ingest would give it, with no database: each service's
    records parsed, folded and fingerprinted in time order by a fresh fingerprinter.

    Returns one id per line (a record folded into an event carries the event's, one that is not an
    error, a blank or a rejected line "") and the rejected lines' numbers and reasons.
    """
    per_service: dict[str, list[tuple[int, Record]]] = {}
    rejected: list[tuple[int, str]] = []
    total = 0
    for number, raw in enumerate(lines, start=1):
        total = number
        raw = raw.strip(b"\r\n \t")
        if not raw:
            continue
        try:
            name, record = line_read(raw)
        except (ValueError, OverflowError) as exc:
            rejected.append((number, str(exc)))
            continue
        per_service.setdefault(name, []).append((number, record))
    ids = [""] * total
    for numbered in per_service.values():
        numbered.sort(key=lambda item: item[1].timestamp)
        folded = events_fold(record_fields([record for _, record in numbered]))
        texts = [text_clean(event.text) for _, event in folded]
        # a line sent twice is stored once (ingest's dedupe): it carries the first one's fingerprint
        first: dict[str, int] = {}
        keys = [
            first.setdefault(record_dedupe(numbered[i[0]][1], t), n)
            for n, ((i, _), t) in enumerate(zip(folded, texts, strict=True))
        ]
        fingerprinter = Fingerprinter(raw=True)
        fresh = [n for n, key in enumerate(keys) if key == n]
        found = events_fingerprint(fingerprinter, ((folded[n][1], texts[n]) for n in fresh))
        by_event = {n: fingerprinter.store.resolve(fp.id) for n, fp in zip(fresh, found, strict=True) if fp}
        for n, (indices, _) in enumerate(folded):
            for index in indices:
                ids[numbered[index][0] - 1] = by_event.get(keys[n], "")
    return ids, rejected
