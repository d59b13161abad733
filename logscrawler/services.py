"""Logs workflows: ingest a batch of records (parse → fold → fingerprint → store), top errors, prune.

One batch of one service is one transaction, taken under the service's row lock: lines, occurrences,
rollups, fingerprint state and events commit together, or not at all. A batch sent again stores
nothing twice (``LogLine.dedupe`` is unique per service).
"""

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from juggernaut.db import queryset_delete_batched
from juggernaut.events import publish
from logscrawler import pipeline
from logscrawler.alerts import alerts_evaluate
from logscrawler.errors import LogsError
from logscrawler.fingerprint import GROUPING_VERSION, Fingerprint, Fingerprinter, Template, TemplateStore
from logscrawler.models import (
    ErrorFingerprint,
    ErrorMinute,
    ErrorOccurrence,
    FingerprintStatus,
    LogAlert,
    LogLine,
    LogService,
)
from logscrawler.parser import Event
from logscrawler.pipeline import RecordFields, events_fingerprint, events_fold


@dataclass(slots=True)
class Record:
    """One line as a source delivers it."""

    timestamp: datetime
    message: str
    severity: str = ""
    attributes: dict = field(default_factory=dict)
    source_id: str = ""


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    errors: int = 0
    new_fingerprints: list[int] = field(default_factory=list)
    variant_fingerprints: list[int] = field(default_factory=list)  # new, but one word away from a known one
    regressed_fingerprints: list[int] = field(default_factory=list)
    touched_fingerprints: list[int] = field(default_factory=list)


def text_clean(text: str) -> str:
    """What can be stored of a line: no NUL (PostgreSQL refuses it), at most ``LOGS_MAX_LINE_CHARS``."""
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a JSON "\ud800" escape
        text = text.encode("utf-8", "replace").decode("utf-8")
    limit = settings.LOGS_MAX_LINE_CHARS
    if (
        len(text) > limit + 64
    ):  # the slack keeps a cut text (with its marker) as it is: cleaning twice is safe
        text = f"{text[:limit]} … [truncated {len(text) - limit} characters]"
    return text


def record_dedupe(record: Record, text: str) -> str:
    """What makes a stored line the same line: its source's id, else its time and text."""
    seed = (
        f"id\x00{record.source_id}" if record.source_id else f"ts\x00{record.timestamp.isoformat()}\x00{text}"
    )
    return hashlib.sha256(seed.encode("utf-8", "replace")).hexdigest()


def _store_load(rows: dict[str, ErrorFingerprint]) -> TemplateStore:
    store = TemplateStore()
    for row in sorted(rows.values(), key=lambda r: r.order):
        if row.merged_into_id is None and row.tokens and row.grouping_version == GROUPING_VERSION:
            store.add(Template(id=row.key, tokens=list(row.tokens), order=row.order, general=row.general))
    by_pk = {row.pk: row.key for row in rows.values()}
    for row in rows.values():
        if row.merged_into_id is not None and row.merged_into_id in by_pk:
            store.aliases[row.key] = by_pk[row.merged_into_id]
    return store


def record_fields(records: list[Record]) -> list[RecordFields]:
    """What parsing reads of each record."""
    return [(r.message, r.severity or None, r.attributes, r.timestamp) for r in records]


def _fold(records: list[Record]) -> list[tuple[Record, Event]]:
    """Parse and fold one service's records (in time order); each event keeps its first record."""
    return [(records[indices[0]], event) for indices, event in events_fold(record_fields(records))]


def open_event_start(records: list[Record], *, look_back: int = 500) -> int:
    """Index of the first record of the last event of ``records``: see ``pipeline.open_event_start``."""
    return pipeline.open_event_start(record_fields(records), look_back=look_back)


def logs_ingest(service: LogService, records: list[Record], *, now: datetime | None = None) -> IngestResult:
    """Store one service's records; fingerprint and count the errors among them."""
    now = now or timezone.now()
    result = IngestResult()
    records = sorted(records, key=lambda r: r.timestamp)
    with transaction.atomic():
        LogService.objects.select_for_update().filter(pk=service.pk).first()
        events = []
        for record, event in _fold(records):
            text = text_clean(event.text)
            events.append((record, event, text, record_dedupe(record, text)))
        seen = set(
            LogLine.objects.filter(service=service, dedupe__in=[e[3] for e in events]).values_list(
                "dedupe", flat=True
            )
        )
        fresh, batch = [], set()
        for item in events:
            if item[3] in seen or item[3] in batch:
                result.duplicates += item[1].lines
            else:
                batch.add(item[3])
                fresh.append(item)
        if not fresh:
            return result
        rows = {row.key: row for row in ErrorFingerprint.objects.filter(service=service)}
        fingerprinter = Fingerprinter(raw=True, store=_store_load(rows))
        found = events_fingerprint(fingerprinter, ((event, text) for _, event, text, _ in fresh))
        keys = [fingerprinter.store.resolve(f.id) if f else None for f in found]
        fingerprints = _fingerprints_save(service, fingerprinter.store, rows, found, keys, fresh, now, result)
        lines = LogLine.objects.bulk_create(
            [
                LogLine(
                    service=service,
                    timestamp=record.timestamp,
                    received_at=now,
                    message=text,
                    severity=record.severity[:32],
                    level=event.level or "",
                    is_error=event.is_error,
                    http_status=event.http_status,
                    attributes=record.attributes,
                    source_id=record.source_id[:200],
                    dedupe=dedupe,
                    fingerprint=fingerprints[key] if key else None,
                )
                for (record, event, text, dedupe), key in zip(fresh, keys, strict=True)
            ]
        )
        if any(line.pk is None for line in lines):  # backends that do not return ids
            by_dedupe = dict(
                LogLine.objects.filter(service=service, dedupe__in=batch).values_list("dedupe", "pk")
            )
            for line in lines:
                line.pk = by_dedupe[line.dedupe]
        ErrorOccurrence.objects.bulk_create(
            [
                ErrorOccurrence(fingerprint=line.fingerprint, line_id=line.pk, timestamp=line.timestamp)
                for line in lines
                if line.fingerprint is not None
            ]
        )
        _rollups_add(service, [(line.fingerprint, line.timestamp) for line in lines if line.fingerprint])
        result.accepted = sum(event.lines for _, event, _, _ in fresh)
        result.errors = sum(1 for line in lines if line.is_error)
        for pk in result.new_fingerprints:
            fp = next(f for f in fingerprints.values() if f.pk == pk)
            publish("logs", "fingerprint_new", _fingerprint_event(fp))
        alerts_evaluate(
            service,
            new=[pk for pk in result.new_fingerprints if pk not in result.variant_fingerprints],
            regressed=result.regressed_fingerprints,
            touched=result.touched_fingerprints,
            now=now,
        )
        publish(
            "logs",
            "ingested",
            {
                "service": service.name,
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "errors": result.errors,
            },
        )
    return result


def _fingerprints_save(
    service: LogService,
    store: TemplateStore,
    rows: dict[str, ErrorFingerprint],
    found: list[Fingerprint | None],
    keys: list[str | None],
    fresh: list[tuple[Record, Event, str, str]],
    now: datetime,
    result: IngestResult,
) -> dict[str, ErrorFingerprint]:
    """Create, widen, count and merge the fingerprint rows this batch touched; return them by key.

    ``found`` and ``keys`` run alongside ``fresh`` (record, event, stored text, dedupe key): the
    fingerprint of each error event as matched, and its final key once this batch's merges are in.
    """
    touched: dict[str, ErrorFingerprint] = {}
    counts: Counter[str] = Counter()
    last: dict[str, tuple] = {}
    for fingerprint, key, (record, _event, text, _) in zip(found, keys, fresh, strict=True):
        if key is None:
            continue
        counts[key] += 1
        if key not in last or record.timestamp >= last[key][0]:
            last[key] = (record.timestamp, text, fingerprint)
    first_seen = {}
    for key, (record, *_rest) in ((k, v) for k, v in zip(keys, fresh, strict=True) if k):
        first_seen.setdefault(key, record.timestamp)
    for key, count in counts.items():
        seen_at, sample, fingerprint = last[key]
        template = store.templates.get(key)
        row = rows.get(key)
        if row is None:
            row = ErrorFingerprint.objects.create(
                service=service,
                key=key,
                grouping_version=GROUPING_VERSION,
                template=template.text if template else fingerprint.template,
                tokens=list(template.tokens) if template else [],
                order=template.order if template else 0,
                general=template.general if template else False,
                exception_type=fingerprint.exception_type[:300],
                sample=sample[:4000],
                count=count,
                first_seen=first_seen[key],
                last_seen=seen_at,
            )
            rows[key] = row
            result.new_fingerprints.append(row.pk)
            if template is not None and store.is_variant(key):
                result.variant_fingerprints.append(row.pk)
        else:
            if row.status == FingerprintStatus.RESOLVED:
                row.status = FingerprintStatus.REGRESSED
                result.regressed_fingerprints.append(row.pk)
            row.count = F("count") + count
            row.last_seen = max(row.last_seen, seen_at)
            row.sample = sample[:4000]
            if template is not None:
                row.template, row.tokens, row.general = template.text, list(template.tokens), template.general
            row.save(
                update_fields=["status", "count", "last_seen", "sample", "template", "tokens", "general"]
            )
            row.refresh_from_db(fields=["count"])
        touched[key] = row
        result.touched_fingerprints.append(row.pk)
    _merges_apply(store, rows)
    return touched


def _merges_apply(store: TemplateStore, rows: dict[str, ErrorFingerprint]) -> None:
    """Stored fingerprints that the store merged into another: move their counts and history over."""
    for key, row in rows.items():
        target_key = store.resolve(key)
        if target_key == key or row.merged_into_id is not None or target_key not in rows:
            continue
        target = rows[target_key]
        ErrorOccurrence.objects.filter(fingerprint=row).update(fingerprint=target)
        LogLine.objects.filter(fingerprint=row).update(fingerprint=target)
        for minute in ErrorMinute.objects.filter(fingerprint=row):
            updated = ErrorMinute.objects.filter(fingerprint=target, minute=minute.minute).update(
                count=F("count") + minute.count
            )
            if not updated:
                ErrorMinute.objects.create(
                    fingerprint=target, service_id=row.service_id, minute=minute.minute, count=minute.count
                )
            minute.delete()
        ErrorFingerprint.objects.filter(pk=target.pk).update(
            count=F("count") + row.count, first_seen=min(target.first_seen, row.first_seen)
        )
        row.merged_into = target
        row.save(update_fields=["merged_into"])
        # it was one more variant of the target all along: its "new error" alert is not news
        LogAlert.objects.filter(fingerprint=row, closed_at__isnull=True).update(closed_at=timezone.now())


def _rollups_add(service: LogService, hits: list[tuple[ErrorFingerprint, datetime]]) -> None:
    per_minute: Counter[tuple[int, datetime]] = Counter()
    by_pk = {}
    for fingerprint, ts in hits:
        per_minute[(fingerprint.pk, ts.replace(second=0, microsecond=0))] += 1
        by_pk[fingerprint.pk] = fingerprint
    for (pk, minute), count in per_minute.items():
        updated = ErrorMinute.objects.filter(fingerprint_id=pk, minute=minute).update(
            count=F("count") + count
        )
        if not updated:
            ErrorMinute.objects.create(fingerprint_id=pk, service=service, minute=minute, count=count)


def _fingerprint_event(fp: ErrorFingerprint) -> dict:
    return {
        "fingerprint_id": fp.pk,
        "service": fp.service.name,
        "template": fp.template[:500],
        "exception_type": fp.exception_type,
        "status": fp.status,
    }


def logs_prune(*, now: datetime | None = None) -> int:
    """Delete raw lines older than ``LOGS_RETENTION_DAYS``, ``HQ_PRUNE_BATCH`` at a time; fingerprints
    and rollups stay."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.LOGS_RETENTION_DAYS)
    return queryset_delete_batched(LogLine.objects.filter(timestamp__lt=cutoff))


def service_for_import(name: str) -> LogService:
    """The service named ``name``, created if new (an operator importing a file names it)."""
    service, _ = LogService.objects.get_or_create(name=name)
    return service


def service_create(name: str) -> LogService:
    """A new service an operator adds by name (lines pushed for it are then accepted)."""
    name = name.strip()
    if not name or len(name) > 120 or not name.isprintable():
        raise LogsError("bad_name", "a service name is 1 to 120 printable characters", status=422)
    service, created = LogService.objects.get_or_create(name=name)
    if not created:
        raise LogsError("exists", f"a service named {name!r} exists already", status=422)
    return service


def services_by_name(names: set[str]) -> dict[str, LogService]:
    return {s.name: s for s in LogService.objects.filter(name__in=names)}


ACTIONS = {
    "acknowledge": FingerprintStatus.ACKNOWLEDGED,
    "resolve": FingerprintStatus.RESOLVED,
    "ignore": FingerprintStatus.IGNORED,
}


def fingerprint_set_status(fingerprint: ErrorFingerprint, action: str, *, actor: str) -> ErrorFingerprint:
    """An operator's verdict on a fingerprint; its open alerts close with it."""
    if action not in ACTIONS:
        raise LogsError(
            "bad_action", f"unknown action {action[:40]!r}: acknowledge, resolve or ignore", status=422
        )
    with transaction.atomic():
        ErrorFingerprint.objects.filter(pk=fingerprint.pk).update(status=ACTIONS[action])
        fingerprint.status = ACTIONS[action]
        LogAlert.objects.filter(fingerprint=fingerprint, closed_at__isnull=True).update(
            closed_at=timezone.now()
        )
        publish("logs", "fingerprint_status", {**_fingerprint_event(fingerprint), "actor": actor})
    return fingerprint
