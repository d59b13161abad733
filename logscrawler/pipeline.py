"""Parse and fold one service's records, the same way for ingest, the crawler and offline tools.

Parsing is bounded twice: every pattern runs in linear time, and a record whose parse still takes
longer than ``LOGS_PARSE_BUDGET_MS`` is kept as one "unparsable" event (its text, the severity its
source gave) instead of being dropped or holding up the rest.
"""

import time
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings

from logscrawler.fingerprint import Fingerprint, Fingerprinter
from logscrawler.parser import Event, TraceFolder, normalise_level, parse_record

# (message, severity, attributes, timestamp) of one record, as its source delivered it
RecordFields = tuple[str, str | None, dict | None, datetime | None]


def event_parse(message: str, *, severity: str | None = None, attributes: dict | None = None) -> Event:
    """One record's event, or an "unparsable" event holding its text when parsing runs over budget."""
    budget = settings.LOGS_PARSE_BUDGET_MS / 1000
    start = time.perf_counter()
    try:
        event = parse_record(message, severity=severity, attributes=attributes)
    except RecursionError:
        event = None
    if event is not None and time.perf_counter() - start <= budget:
        return event
    text = message.rstrip()
    return Event(
        text=text,
        message=text.split("\n", 1)[0].strip()[:500],
        level=normalise_level(severity),
        attributes=dict(attributes or {}),
        unparsable=True,
    )


def events_fold(records: Iterable[RecordFields]) -> list[tuple[list[int], Event]]:
    """Parse and fold one service's records (in time order): each event with the indices of the
    records it holds, in order (a stack trace delivered line by line is one event of many records)."""
    folder = TraceFolder()
    members: dict[int, list[int]] = {}
    out: list[Event] = []
    for index, (message, severity, attributes, at) in enumerate(records):
        event = event_parse(message, severity=severity or None, attributes=attributes)
        out.extend(folder.feed(event, at))
        opened = folder.open_event
        if opened is event:
            members[id(event)] = [index]
        elif opened is not None:
            members[id(opened)].append(index)
    out.extend(folder.flush())
    return [(members[id(event)], event) for event in out]


def open_event_start(records: list[RecordFields], *, look_back: int = 500) -> int:
    """Index of the first record of the last event of ``records`` (one service's, in time order).

    The records from there on may be continued by the next batch: a source that sends a stream in
    batches holds them back and sends them with the next one, so a stack trace cut by a batch boundary
    is still one event. Only the last ``look_back`` records are read (a longer event is cut anyway).
    """
    start = max(len(records) - look_back, 0)
    folded = events_fold(records[start:])
    return start + folded[-1][0][0] if folded else start


def events_fingerprint(
    fingerprinter: Fingerprinter, events: Iterable[tuple[Event, str]]
) -> list[Fingerprint | None]:
    """The fingerprint of each (event, stored text) of one service, None for an event that is not an
    error; ids as matched, before later merges (``fingerprinter.store.resolve`` gives the final ones)."""
    return [
        fingerprinter.fingerprint(text, unparsable=event.unparsable) if event.is_error else None
        for event, text in events
    ]
