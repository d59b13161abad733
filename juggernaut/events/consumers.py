"""Websocket consumers of the event log: JSON envelopes for programs, HTML fragments for the HQ.

Both check the caller on connect and then only forward. Delivery is exactly once and in order per
topic: a subscriber remembers the last ``seq`` it sent, drops repeats and fills gaps from the log.
The HQ's fragments for a batch of events are rendered once per page in this process and the same
HTML goes to every socket showing that page (``SharedRenders``; once per viewer where a page shows
what belongs to its viewer); so are the fragments re-rendered on a timer for states that become true
by time alone.
"""

import asyncio
import contextlib
import json
import logging
import math
import re
import weakref
from collections import OrderedDict
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from juggernaut import hq
from juggernaut.errors import HQError
from juggernaut.events import EventError, events_after, group_name, last_seqs, topic_readable, topic_validate
from juggernaut.events.relay import get_relay
from juggernaut.inputs import BIGINT_MAX, json_strict_loads

log = logging.getLogger(__name__)

# The text of <time> elements: ages change every second, the browser counts them, no resend needed.
AGES = re.compile(r"(<time [^>]*>)[^<]*(</time>)")
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_INTERNAL = 1011
MAX_TOPICS = 50
# A client's frame is a subscription message: a few topics and numbers.
MAX_FRAME_CHARS = 16_384


class EventSubscriber:
    """Per-connection bookkeeping shared by the websocket consumers and the SSE stream."""

    def __init__(self, channel_layer, channel_name: str, deliver) -> None:
        self.layer = channel_layer
        self.channel_name = channel_name
        self.deliver = deliver  # async callable(list[envelope])
        self.sent: dict[str, int] = {}

    async def subscribe(self, topic: str, after_seq: int) -> None:
        if topic in self.sent:
            return
        # Join the group first, then replay: whatever arrives meanwhile is queued and deduplicated.
        await self.layer.group_add(group_name(topic), self.channel_name)
        await get_relay().watch(topic)
        self.sent[topic] = max(0, after_seq)
        await self._catch_up(topic, upto=None)

    async def unsubscribe(self, topic: str) -> None:
        if self.sent.pop(topic, None) is None:
            return
        await self.layer.group_discard(group_name(topic), self.channel_name)
        get_relay().unwatch(topic)

    async def close(self) -> None:
        for topic in list(self.sent):
            await self.unsubscribe(topic)

    async def on_batch(self, topic: str, envelopes: list[dict]) -> None:
        if topic not in self.sent:
            return
        fresh: list[dict] = []
        for env in envelopes:
            last = self.sent[topic]
            if env["seq"] <= last:
                continue
            if env["seq"] > last + 1:
                # A gap: events committed between our replay and the relay's watermark.
                await self._flush(fresh)
                fresh = []
                await self._catch_up(topic, upto=env["seq"] - 1)
                if env["seq"] <= self.sent[topic]:
                    continue
            fresh.append(env)
            self.sent[topic] = env["seq"]
        await self._flush(fresh)

    async def _catch_up(self, topic: str, upto: int | None) -> None:
        while True:
            page = await database_sync_to_async(events_after)(topic, self.sent[topic], limit=500)
            if upto is not None:
                page = [e for e in page if e["seq"] <= upto]
            if not page:
                return
            self.sent[topic] = page[-1]["seq"]
            await self.deliver(page)
            if len(page) < 500 or (upto is not None and self.sent[topic] >= upto):
                return

    async def _flush(self, envelopes: list[dict]) -> None:
        if envelopes:
            await self.deliver(envelopes)


class SubscribingConsumer(AsyncWebsocketConsumer):
    """A websocket with an ``EventSubscriber``: group batches go through it, and it leaves on close.

    Whatever a handler raises, the client gets an error frame and a 1011 close, and the cleanup
    (leaving groups, the relay unwatching topics and the token) runs exactly once, on every way out.
    """

    subscriber: EventSubscriber
    token_id: int | None = None
    user_id: int | None = None  # a signed-in session's operator, watched instead of a token

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cleanup()

    async def dispatch(self, message: dict) -> None:
        try:
            await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception:
            log.exception("websocket consumer failed on %s; closing it", message.get("type"))
            await self._fail()

    async def _fail(self) -> None:
        try:
            await self._send_error("internal_error", "the server failed on this connection; reconnect")
            await self.close(code=CLOSE_INTERNAL)
        except Exception:  # the socket may already be gone; the cleanup below still runs
            log.debug("could not send the error frame", exc_info=True)
        await self._cleanup()

    async def _cleanup(self) -> None:
        subscriber = self.__dict__.pop("subscriber", None)
        if subscriber is not None:
            await subscriber.close()
        if self.token_id is not None:
            get_relay().unwatch_token(self.token_id, self.channel_name)
            self.token_id = None
        if self.user_id is not None:
            get_relay().unwatch_user(self.user_id, self.channel_name)
            self.user_id = None

    async def _accept_principal(self, principal) -> None:
        """Accept, and have the relay close this socket if the caller's token is revoked, or the
        session's operator stops being one."""
        await self.accept()
        if principal.token is not None:
            self.token_id = principal.token.pk
            get_relay().watch_token(self.token_id, self.channel_name)
        else:
            self.user_id = principal.user.pk
            get_relay().watch_user(self.user_id, self.channel_name)

    async def disconnect(self, code) -> None:
        await self._cleanup()

    async def events_batch(self, message: dict) -> None:
        if hasattr(self, "subscriber"):
            await self.subscriber.on_batch(message["topic"], message["events"])

    async def token_revoked(self, message: dict) -> None:
        await self._send_error("token_revoked", "the token of this connection was revoked or expired")
        await self.close(code=CLOSE_UNAUTHORIZED)
        await self._cleanup()

    async def operator_revoked(self, message: dict) -> None:
        await self._send_error("not_an_operator", "this account is no longer an active operator")
        await self.close(code=CLOSE_UNAUTHORIZED)
        await self._cleanup()

    async def _send_error(self, code: str, message: str) -> None:
        await self.send(text_data=json.dumps(HQError(code, message).as_dict()))


class EventsConsumer(SubscribingConsumer):
    """``/ws/events/``: send ``{"subscribe": [...], "after_seq": {topic: N}}``, receive envelopes."""

    async def connect(self) -> None:
        principal = self.scope.get("principal")
        if principal is None or not principal.has_scope("read"):
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.subscriber = EventSubscriber(self.channel_layer, self.channel_name, self._send_envelopes)
        await self._accept_principal(principal)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            topics, seqs, drop = self._parse(text_data, bytes_data)
        except HQError as exc:
            await self._send_error(exc.code, exc.message)
            return
        except (ValueError, TypeError, EventError) as exc:
            await self._send_error("bad_request", str(exc))
            return
        for topic in drop:
            await self.subscriber.unsubscribe(topic)
        user = self.scope["principal"].user
        for topic in topics:
            if not await database_sync_to_async(topic_readable)(user, topic):
                await self._send_error("not_found", f"no topic {topic}")
                continue
            try:
                await self.subscriber.subscribe(topic, seqs[topic])
            except Exception:
                # Leave nothing half-joined: the client may simply subscribe again.
                log.exception("subscribing to %s failed", topic)
                await self.subscriber.unsubscribe(topic)
                await self._send_error("subscribe_failed", f"could not subscribe to {topic}; try again")
        await self.send(text_data=json.dumps({"subscribed": sorted(self.subscriber.sent)}))

    def _parse(self, text_data, bytes_data) -> tuple[list[str], dict[str, int], list[str]]:
        if bytes_data is not None or text_data is None:
            raise ValueError("send text frames holding a JSON object")
        if len(text_data) > MAX_FRAME_CHARS:
            raise HQError("frame_too_large", f"a frame may hold at most {MAX_FRAME_CHARS} characters")
        message = json_strict_loads(text_data)
        if not isinstance(message, dict):
            raise ValueError("expected a JSON object")
        topics = message.get("subscribe", [])
        after = message.get("after_seq", {}) or {}
        drop = message.get("unsubscribe", [])
        if not isinstance(topics, list) or not isinstance(after, dict) or not isinstance(drop, list):
            raise ValueError("subscribe and unsubscribe are lists, after_seq an object")
        for topic in topics + drop:
            topic_validate(topic)
        if len(set(topics) | set(self.subscriber.sent)) > MAX_TOPICS:
            raise ValueError(f"at most {MAX_TOPICS} topics per connection")
        seqs = {}
        for topic in topics:
            seq = after.get(topic, 0) or 0
            if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= BIGINT_MAX:
                raise ValueError(f"after_seq of {topic} must be a whole number from 0 to {BIGINT_MAX}")
            seqs[topic] = seq
        return topics, seqs, drop

    async def _send_envelopes(self, envelopes: list[dict]) -> None:
        for env in envelopes:
            await self.send(text_data=json.dumps(env))


class HQConsumer(SubscribingConsumer):
    """``/ws/hq/``: server-rendered fragments for htmx's ws extension, swapped by element id.

    On every (re)connect it first sends the current state of the page's live fragments, which is the
    HTML view's replay; after that, each event re-renders what it touches.
    """

    async def connect(self) -> None:
        principal = self.scope.get("principal")
        if principal is None or principal.token is not None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.page = (query.get("page") or [hq.OVERVIEW])[0][:40]
        self.user = principal.user
        own = await database_sync_to_async(self._page_topics)()
        self.topics = hq.live_topics() + [t for t in own if t not in hq.live_topics()]
        self.subscriber = EventSubscriber(self.channel_layer, self.channel_name, self._render)
        await self._accept_principal(principal)
        # Counters first, then the render: anything committed in between arrives as an event.
        # The page's own topics are replayed from their start: their fragments render from the database
        # up to each replayed batch, so nothing between the page's render and this connect is lost.
        seqs = await database_sync_to_async(last_seqs)([t for t in self.topics if t not in own])
        resync, timed = await database_sync_to_async(_connect_renders)(self.page, self.user)
        await self.send(text_data=resync)
        for topic in self.topics:
            await self.subscriber.subscribe(topic, seqs.get(topic, 0))
        self.refresher = asyncio.get_running_loop().create_task(self._refresh(_ageless(timed)))

    async def _cleanup(self) -> None:
        refresher = self.__dict__.pop("refresher", None)
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        await super()._cleanup()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """htmx may send form values over the socket; the HQ uses plain HTTP for actions."""

    async def _refresh(self, last: str | None = None) -> None:
        """Every ``HQ_REFRESH_SECONDS``, the page's time-dependent fragments (one render per page and
        interval, shared); sent only when they changed beyond the ages in them. ``last`` is their
        state when the resync was sent, so the first refresh does not send them again unchanged."""
        loop = asyncio.get_running_loop()
        interval = settings.HQ_REFRESH_SECONDS
        while True:
            # Wake on the interval's boundary, so every socket of a page asks for the same render.
            bucket = math.floor(loop.time() / interval) + 1
            await asyncio.sleep(max(bucket * interval - loop.time(), 0))
            try:
                html = await SharedRenders.of_running_loop().timed(self.page, bucket, self.user)
            except Exception:  # a failed refresh must not close the page's live connection
                log.exception("timed refresh of %s failed", self.page)
                continue
            key = _ageless(html)
            if html and key != last:
                last = key
                await self.send(text_data=html)

    def _page_topics(self) -> list[str]:
        """The page's own topics (a chat session's runs), each checked against the viewer."""
        return [t for t in hq.page_topics(self.user, self.page) if topic_readable(self.user, t)]

    async def _follow_page_topics(self) -> None:
        """Subscribe to page topics that appeared since (a run started in the page's session)."""
        for topic in await database_sync_to_async(self._page_topics)():
            if topic not in self.subscriber.sent:
                await self.subscriber.subscribe(topic, 0)

    async def _render(self, envelopes: list[dict]) -> None:
        html = await SharedRenders.of_running_loop().html(self.page, envelopes, self.user)
        if html:
            await self.send(text_data=html)
        own = any(self.page.startswith(prefix) for prefix in hq.PAGE_TOPICS)
        if own and envelopes and envelopes[0]["topic"] in hq.live_topics():
            await self._follow_page_topics()


def _ageless(html: str) -> str:
    """The fragments without the text of their ages, to tell whether anything else changed."""
    return AGES.sub(r"\1\2", html)


def _connect_renders(page: str, viewer) -> tuple[str, str]:
    """On connect: the resync, and the timed fragments' state at the same moment."""
    return hq.render_resync(page, viewer), hq.render_timed(page, viewer)


class SharedRenders:
    """One render of a page's fragments per batch of events, shared by every socket of that page.

    Sockets of one page receive the same batches (same topic and seqs) from the relay, so the first
    to get a batch starts its render and the others await it. HTML rendered after a batch's last
    event committed is right for every socket that receives that batch: anything that changed since
    has a later event of its own. The render runs as its own task, so a socket that goes away while
    waiting does not cancel it for the others.
    """

    KEEP = 64  # recent batches; a socket a few batches behind still finds its render here

    _by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedRenders]" = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self.renders: OrderedDict[tuple, asyncio.Task] = OrderedDict()
        self.count = 0  # renders started: what the sharing saves is visible in tests and benches

    @classmethod
    def of_running_loop(cls) -> "SharedRenders":
        loop = asyncio.get_running_loop()
        if loop not in cls._by_loop:
            cls._by_loop[loop] = cls()
        return cls._by_loop[loop]

    async def timed(self, page: str, bucket: int, viewer=None) -> str:
        """The page's time-dependent fragments for one refresh interval (``bucket``): what every viewer
        sees alike rendered once, and where the page shows what is the viewer's (``hq.viewer_key``),
        that part once per viewer."""
        shared = await self._shared(
            (page, None, "timed", bucket), lambda: hq.render_timed(page, part="shared")
        )
        key = hq.viewer_key(page, viewer)
        if key is None:
            return shared
        return shared + await self._shared(
            (page, key, "timed", bucket), lambda: hq.render_timed(page, viewer, part="own")
        )

    async def _shared(self, key: tuple, render_sync) -> str:
        render = self.renders.get(key)
        if render is None:
            self.count += 1
            render = asyncio.ensure_future(database_sync_to_async(render_sync)())
            self.renders[key] = render
            while len(self.renders) > self.KEEP:
                self.renders.popitem(last=False)
        return await asyncio.shield(render)

    async def html(self, page: str, envelopes: list[dict], viewer=None) -> str:
        # The timestamps make the key unique even where sequence numbers start again (a database
        # emptied under a running server, as between tests): a stale render is never reused.
        first, last = envelopes[0], envelopes[-1]
        key = (
            page,
            hq.viewer_key(page, viewer, envelopes),
            first["topic"],
            first["seq"],
            last["seq"],
            first["ts"],
            last["ts"],
        )
        return await self._shared(key, lambda: hq.render_events(envelopes, page, viewer))
