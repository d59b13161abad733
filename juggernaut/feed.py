"""The activity feed's words: each app turns its own event types into sentences.

An app registers one describer per topic (``feed_register`` from ``AppConfig.ready``); that function is
the one place its event types map to a sentence, a severity and a link. Events nobody describes
still read as words (their type, spaced, plus any message they carry). A describer leaves a routine
event out of the feed (a step of a run whose result gets its own line) by returning ``FeedItem("")``.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

SEVERITIES = ("info", "ok", "warn", "error")


@dataclass
class FeedItem:
    text: str
    severity: str = "info"  # info | ok | warn | error: error and warn stand out in the feed
    url: str = ""
    detail: str = ""  # an error or long reason, shown collapsed to its first line


Describer = Callable[[str, dict], FeedItem | None]
DESCRIBERS: dict[str, Describer] = {}


def feed_register(topic: str, describe: Describer) -> None:
    """``describe(type, data)`` returns the sentence for one event of ``topic`` (None: the default)."""
    DESCRIBERS[topic] = describe


def _default(type_: str, data: dict) -> FeedItem:
    text = type_.replace("_", " ").replace(".", " ").capitalize()
    message = next((data[k] for k in ("message", "title", "reason", "name") if data.get(k)), "")
    return FeedItem(f"{text}: {message}" if message else f"{text}.")


def describe(envelope: dict) -> FeedItem:
    data = envelope.get("data") or {}
    describer = DESCRIBERS.get(envelope["topic"])
    item = None
    if describer is not None:
        try:
            item = describer(envelope["type"], data)
        except Exception:  # one app's bad describer must not take the feed down
            logging.getLogger(__name__).exception("feed describer for %s failed", envelope["topic"])
    return item or _default(envelope["type"], data)


def feed_items(envelopes: list[dict]) -> list[dict]:
    """What ``_activity_item.html`` shows for each event."""
    items = []
    for env in envelopes:
        try:
            ts = datetime.fromisoformat(env["ts"])
        except (KeyError, ValueError):
            ts = timezone.now()
        item = describe(env)
        if item.text:  # an empty sentence: routine, folded into the line its run ends with
            items.append({"e": env, "ts": ts, "item": item})
    return items
