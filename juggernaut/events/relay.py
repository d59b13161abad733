"""The relay: one per web process (one per event loop), from the event log to Channels groups.

It watches only the topics that local clients subscribed to, and for each keeps the last ``seq`` it
fanned out. A poll reads the topic counters, then the rows past each watermark. Because a topic's
sequence numbers become visible strictly in order (see ``EventTopic``), this never skips an event
whose transaction committed late, which tailing by id would. Consumers drop what they already sent
and fill gaps from the log, so delivery to a client is exactly once and in order either way.
"""

import asyncio
import contextlib
import logging
from collections import Counter

import psycopg
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections

from juggernaut.db import listen_backoff, listen_connect_params
from juggernaut.events import NOTIFY_CHANNEL, events_after, group_name, last_seqs, wake
from juggernaut.models import ApiToken

log = logging.getLogger(__name__)

BATCH = 500


class Relay:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watermarks: dict[str, int] = {}
        self.refs: Counter[str] = Counter()
        self.wake = asyncio.Event()
        self.layer = get_channel_layer()
        self.tasks: list[asyncio.Task] = []
        self.polls = 0
        # Channels (websockets, SSE streams) opened with each API token, closed when it stops working,
        # and those opened with an operator's signed-in session, closed when they stop being one.
        self.token_channels: dict[int, set[str]] = {}
        self.user_channels: dict[int, set[str]] = {}
        self.tokens_checked_at = 0.0

    def start(self) -> None:
        self.tasks.append(self.loop.create_task(self._run(), name="event-relay"))
        if connections["default"].vendor == "postgresql":
            self.tasks.append(self.loop.create_task(self._listen(), name="event-relay-listen"))

    async def watch(self, topic: str) -> None:
        self.refs[topic] += 1
        if topic not in self.watermarks:
            seqs = await database_sync_to_async(last_seqs)([topic])
            self.watermarks.setdefault(topic, seqs.get(topic, 0))

    def unwatch(self, topic: str) -> None:
        self.refs[topic] -= 1
        if self.refs[topic] <= 0:
            del self.refs[topic]
            self.watermarks.pop(topic, None)

    def watch_token(self, token_id: int, channel_name: str) -> None:
        self.token_channels.setdefault(token_id, set()).add(channel_name)

    def unwatch_token(self, token_id: int, channel_name: str) -> None:
        channels = self.token_channels.get(token_id, set())
        channels.discard(channel_name)
        if not channels:
            self.token_channels.pop(token_id, None)

    def watch_user(self, user_id: int, channel_name: str) -> None:
        self.user_channels.setdefault(user_id, set()).add(channel_name)

    def unwatch_user(self, user_id: int, channel_name: str) -> None:
        channels = self.user_channels.get(user_id, set())
        channels.discard(channel_name)
        if not channels:
            self.user_channels.pop(user_id, None)

    def poke(self) -> None:
        self.wake.set()

    async def _run(self) -> None:
        interval = min(settings.EVENTS_POLL_SECONDS, settings.HQ_TOKEN_CHECK_SECONDS)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=interval)
            self.wake.clear()
            try:
                await self.check_tokens()
                if self.watermarks:
                    await self.poll()
            except Exception:
                log.exception("event relay poll failed; retrying")
                await asyncio.sleep(interval)

    async def check_tokens(self) -> None:
        """Tell every stream opened with a token that was revoked, expired or whose user stopped being
        an active operator (one query per interval for the whole process, not one per connection)."""
        now = self.loop.time()
        watched = self.token_channels or self.user_channels
        if not watched or now - self.tokens_checked_at < settings.HQ_TOKEN_CHECK_SECONDS:
            return
        self.tokens_checked_at = now
        for channels, alive_of, message in [
            (self.token_channels, _usable_token_ids, "token.revoked"),
            (self.user_channels, _operator_ids, "operator.revoked"),
        ]:
            ids = list(channels)
            alive = await database_sync_to_async(alive_of)(ids) if ids else set()
            for gone in set(ids) - alive:
                for channel in channels.pop(gone, set()):
                    await self.layer.send(channel, {"type": message})

    async def poll(self) -> None:
        self.polls += 1
        batches = await database_sync_to_async(self._fetch)(dict(self.watermarks))
        for topic, envelopes in batches.items():
            if topic not in self.watermarks or not envelopes:
                continue
            self.watermarks[topic] = max(self.watermarks[topic], envelopes[-1]["seq"])
            await self.layer.group_send(
                group_name(topic), {"type": "events.batch", "topic": topic, "events": envelopes}
            )

    @staticmethod
    def _fetch(watermarks: dict[str, int]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        topics = list(watermarks)
        for start in range(0, len(topics), 500):
            for topic, seq in last_seqs(topics[start : start + 500]).items():
                mark = watermarks[topic]
                while seq > mark:
                    page = events_after(topic, mark, limit=BATCH)
                    if not page:
                        break
                    out.setdefault(topic, []).extend(page)
                    mark = page[-1]["seq"]
        return out

    async def _listen(self) -> None:
        """Wake on Postgres NOTIFY; polling keeps going underneath while this connection is down, and
        it is reopened with backoff for as long as the process lives."""
        backoff, lost = 0.0, False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(**listen_connect_params())
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    if lost:
                        log.info("event relay LISTEN connection back; woken by NOTIFY again")
                    backoff, lost = 0.0, False
                    self.wake.set()  # catch up on anything published while we were not listening
                    async for _ in conn.notifies():
                        self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff, lost = listen_backoff(backoff), True
                log.warning("event relay LISTEN connection lost (%s); retrying in %.0fs", exc, backoff)
                await asyncio.sleep(backoff)


def _usable_token_ids(ids: list[int]) -> set[int]:
    return set(ApiToken.objects.usable().filter(pk__in=ids).values_list("pk", flat=True))


def _operator_ids(ids: list[int]) -> set[int]:
    users = get_user_model().objects.filter(pk__in=ids, is_active=True, is_staff=True)
    return set(users.values_list("pk", flat=True))


def get_relay() -> Relay:
    """The relay of the running event loop, started on first use."""
    loop = asyncio.get_running_loop()
    with wake.lock:
        relay = wake.relays.get(loop)
        if relay is None:
            relay = wake.relays[loop] = Relay(loop)
            relay.start()
    return relay  # type: ignore[return-value]


async def relays_stop() -> None:
    """Cancel the relay of the running loop (tests, shutdown)."""
    loop = asyncio.get_running_loop()
    with wake.lock:
        relay = wake.relays.pop(loop, None)
    if relay is None:
        return
    for task in relay.tasks:
        task.cancel()
    for task in relay.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
