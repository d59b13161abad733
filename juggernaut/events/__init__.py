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


def publish(topic: str, type: str, data: dict | None = None, *, correlation_id: int | None = None) -> Event:
    """Store an event in the caller's transaction; it is fanned out once that transaction commits.

    ``correlation_id`` ties the event to its unit of work (the envelope's ``run_id``)."""
    topic_validate(topic)
    if not type or len(type) > 64:
        raise EventError("event type must be 1 to 64 characters")
    with transaction.atomic():
        connection = connections["default"]
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


def _wake_local_relays(topic: str) -> None:
    """After commit: relays of this process need not wait for their next poll or NOTIFY."""
    wake_all(topic)


def events_after(topic: str, after_seq: int, *, limit: int = 500) -> list[dict]:
    """Envelopes of ``topic`` with ``seq > after_seq``, oldest first."""
    return [e.envelope() for e in Event.objects.after(topic, after_seq)[:limit]]


def last_seqs(topics: list[str]) -> dict[str, int]:
    return dict(EventTopic.objects.filter(topic__in=topics).values_list("topic", "last_seq"))
