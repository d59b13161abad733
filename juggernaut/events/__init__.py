"""The live event log: every live update is a row written with the state change it describes.

``publish()`` stores the event in the caller's transaction; after commit, the relay of every web
process picks it up (woken by ``NOTIFY`` on Postgres, by polling otherwise) and fans it out to the
Channels groups its websockets and SSE streams listen on (see docs/architecture.md).
"""

import hashlib
import re
from collections.abc import Callable
from typing import Any

from django.db import connections, transaction

from juggernaut.events.wake import wake_all
from juggernaut.models import Event, EventTopic
from juggernaut.redaction import scrub_payload

NOTIFY_CHANNEL = "juggernaut_events"
TOPIC_RE = re.compile(r"^[a-z][a-z0-9_.:-]{0,119}$")


class EventError(ValueError):
    """A topic or payload that cannot go into the log."""


# Apps whose topics belong to someone decide who may read them: prefix -> guard(user, topic).
_guards: dict[str, Callable[[Any, str], bool]] = {}


def topic_guard_register(prefix: str, guard: Callable[[Any, str], bool]) -> None:
    """Let an app decide who reads the topics starting with ``prefix`` (``chat.run.``: the run's owner);
    call from ``AppConfig.ready``. Topics without a guard are every operator's."""
    _guards[prefix] = guard


def topic_readable(user, topic: str) -> bool:
    """Whether ``user`` may read ``topic`` (replay, SSE, websocket): a stranger's topic is not there."""
    for prefix, guard in _guards.items():
        if topic.startswith(prefix):
            return guard(user, topic)
    return True


def topic_validate(topic: str) -> str:
    if not isinstance(topic, str) or not TOPIC_RE.match(topic):
        raise EventError(
            f"invalid topic {topic!r}: lowercase letters, digits and _ . : - (up to 120), starting with a letter"
        )
    return topic


def group_name(topic: str) -> str:
    """Channels group for a topic (group names allow fewer characters than topics)."""
    return "ev." + hashlib.sha1(topic.encode(), usedforsecurity=False).hexdigest()


def publish(
    topic: str,
    type: str,
    data: dict | None = None,
    *,
    correlation_id: int | None = None,
    number_after_commit: bool = False,
) -> Event:
    """Store an event in the caller's transaction; it is fanned out once that transaction commits.

    ``correlation_id`` ties the event to its unit of work (the envelope's ``run_id``).

    By default the event is numbered at once, under the topic's counter row, which orders the
    topic's producers until they commit. ``number_after_commit`` is for topics many processes write
    at once (the engine's): on Postgres the row is stored without a ``seq`` and takes no lock; the
    next reader numbers it after it commits (``last_seqs``), so the returned event has no ``seq`` yet.
    SQLite has one writer at a time and always numbers at once."""
    topic_validate(topic)
    if not type or len(type) > 64:
        raise EventError("event type must be 1 to 64 characters")
    connection = connections["default"]
    # No savepoint: a failed publish fails the caller's transaction anyway, and it costs two round trips.
    with transaction.atomic(savepoint=False):
        if number_after_commit and connection.vendor == "postgresql":
            event = Event.objects.create(
                topic=topic, seq=None, type=type, correlation_id=correlation_id, data=redact(data or {})
            )
            announce(topic)
            return event
        with connection.cursor() as cursor:
            # One statement takes the topic's row lock and the next number: no gaps, commit order = seq order.
            cursor.execute(
                "UPDATE event_topics SET last_seq = last_seq + 1 WHERE topic = %s RETURNING last_seq", [topic]
            )
            row = cursor.fetchone()
            if row is None:
                EventTopic.objects.bulk_create([EventTopic(topic=topic, last_seq=0)], ignore_conflicts=True)
                cursor.execute(
                    "UPDATE event_topics SET last_seq = last_seq + 1 WHERE topic = %s RETURNING last_seq",
                    [topic],
                )
                row = cursor.fetchone()
            event = Event.objects.create(
                topic=topic,
                seq=row[0],
                type=type,
                correlation_id=correlation_id,
                data=scrub_payload(data or {}),
            )
            if connection.vendor == "postgresql":
                # Delivered by Postgres at commit, and not at all on rollback.
                cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, topic])
        transaction.on_commit(lambda: _wake_local_relays(topic))
    return event


def announce(topic: str) -> None:
    """Once the caller's transaction commits, wake the relays for events of ``topic`` stored without a
    ``seq`` (by ``publish(number_after_commit=True)``, or by a producer's own SQL).

    The ``NOTIFY`` goes out after the commit, in a transaction of its own that does not wait for its
    WAL flush: Postgres takes a lock for the whole commit of a transaction that notifies, which would
    order every producer's commit again. If the process dies before it, the relays' poll finds the
    events (``EVENTS_POLL_SECONDS``)."""
    transaction.on_commit(lambda: _notify(topic))


def _notify(topic: str) -> None:
    connection = connections["default"]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('synchronous_commit', 'off', true), pg_notify(%s, %s)",
                [NOTIFY_CHANNEL, topic],
            )
    _wake_local_relays(topic)


def _wake_local_relays(topic: str) -> None:
    """After commit: relays of this process need not wait for their next poll or NOTIFY."""
    wake_all(topic)


# Numbers the committed events of the locked topics that have no seq yet, in the order they were
# stored, after each topic's last number; then moves the counters on. Runs while the caller holds
# the topics' counter rows, so the numbers are gapless and become visible in order.
NUMBER_SQL = """
WITH numbered AS (
    UPDATE events e SET seq = t.last_seq + p.n
    FROM (
        SELECT id, topic, row_number() OVER (PARTITION BY topic ORDER BY id) AS n
        FROM events WHERE seq IS NULL AND topic = ANY(%(topics)s)
    ) p
    JOIN event_topics t ON t.topic = p.topic
    WHERE e.id = p.id
    RETURNING e.topic, e.seq
)
UPDATE event_topics t SET last_seq = m.top
FROM (SELECT topic, max(seq) AS top FROM numbered GROUP BY topic) m
WHERE t.topic = m.topic
"""


def events_number(topics: list[str]) -> None:
    """Give the committed, not yet numbered events of ``topics`` their ``seq`` (Postgres).

    A topic whose counter row is held (by a producer numbering at once, or by another reader
    numbering it) is left for the next call: the holder's commit wakes the relays again, so each
    reader numbering something announces it for the relays of other processes."""
    connection = connections["default"]
    if connection.vendor != "postgresql" or not topics:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT topic FROM events WHERE seq IS NULL AND topic = ANY(%s)", [topics])
        pending = sorted(row[0] for row in cursor.fetchall())
    if not pending:
        return
    with transaction.atomic():
        EventTopic.objects.bulk_create(
            [EventTopic(topic=t, last_seq=0) for t in pending], ignore_conflicts=True
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT topic FROM event_topics WHERE topic = ANY(%s) ORDER BY topic FOR UPDATE SKIP LOCKED",
                [pending],
            )
            held = [row[0] for row in cursor.fetchall()]
            if held:
                cursor.execute(NUMBER_SQL, {"topics": held})
        for topic in held:
            announce(topic)


def events_after(topic: str, after_seq: int, *, limit: int = 500) -> list[dict]:
    """Envelopes of ``topic`` with ``seq > after_seq``, oldest first."""
    return [e.envelope() for e in Event.objects.after(topic, after_seq)[:limit]]


def last_seqs(topics: list[str]) -> dict[str, int]:
    """The last ``seq`` of each topic, after numbering what has committed unnumbered."""
    events_number(topics)
    return dict(EventTopic.objects.filter(topic__in=topics).values_list("topic", "last_seq"))
