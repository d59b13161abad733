"""The relays of this process, and the poke that wakes them after a local commit.

Kept apart from the relay so that ``publish()`` can wake relays without the event log importing the
relay (which reads the log): the relay registers itself here, ``publish`` only pokes.
"""

import asyncio
import contextlib
import threading
import weakref
from typing import Protocol


class Wakeable(Protocol):
    loop: asyncio.AbstractEventLoop
    watermarks: dict[str, int]

    def poke(self) -> None: ...


relays: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Wakeable]" = weakref.WeakKeyDictionary()
lock = threading.Lock()


def wake_all(topic: str | None = None) -> None:
    """Poke every relay in this process that watches ``topic`` (safe from any thread)."""
    with lock:
        found = list(relays.values())
    for relay in found:
        if topic is None or topic in relay.watermarks:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                relay.loop.call_soon_threadsafe(relay.poke)
