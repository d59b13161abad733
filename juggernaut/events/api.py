"""The event log over HTTP, mounted at ``/api/events``: replay as JSON pages, and live as server-sent events.

Both read the same log the websockets read (see ``juggernaut.events``); the SSE stream goes through an
``EventSubscriber``, so it resumes from ``Last-Event-ID`` with nothing lost and nothing repeated.
"""

import asyncio
import json
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections
from django.http import StreamingHttpResponse
from ninja import Path, Query, Router, Schema

from juggernaut.auth import origin_allowed, require_scope
from juggernaut.errors import HQError
from juggernaut.events import TOPIC_RE, EventError, events_after, last_seqs, topic_readable, topic_validate
from juggernaut.events.consumers import EventSubscriber
from juggernaut.events.relay import get_relay
from juggernaut.inputs import BIGINT_MAX
from juggernaut.openapi import event_stream

router = Router(tags=["events"])


class EnvelopeOut(Schema):
    v: int
    seq: int
    topic: str
    type: str
    ts: str
    run_id: int | None
    data: dict


class EventPageOut(Schema):
    topic: str
    last_seq: int
    events: list[EnvelopeOut]


def _topic(topic: str, user) -> str:
    try:
        topic_validate(topic)
    except EventError as exc:
        raise HQError("bad_topic", str(exc), status=400) from exc
    if not topic_readable(user, topic):
        raise HQError("not_found", f"no topic {topic}", status=404)
    return topic


Topic = Path(..., pattern=TOPIC_RE.pattern)


@router.get("/{topic}", response=EventPageOut)
def events_replay(
    request,
    topic: str = Topic,
    after_seq: int = Query(0, ge=0, le=BIGINT_MAX),
    limit: int = Query(100, ge=1, le=1000),
):
    """Events of a topic with `seq > after_seq`, oldest first (at most `limit`, up to 1000)."""
    principal = require_scope(request, "read")
    _topic(topic, principal.user)
    return {
        "topic": topic,
        "last_seq": last_seqs([topic]).get(topic, 0),
        "events": events_after(topic, after_seq, limit=limit),
    }


LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "description": "resume after this seq (browsers send it when they reconnect); wins over `after_seq`",
    "schema": {"type": "string", "pattern": r"^\d{1,19}$"},
}


@router.get(
    "/{topic}/stream",
    response={200: None},
    openapi_extra=event_stream(
        "Server-sent events: `id:` the seq, `event:` the type, `data:` the envelope (`EnvelopeOut`); "
        "`: ping` comments while quiet; `event: error` with the error shape when the token is revoked",
        parameters=[LAST_EVENT_ID],
    ),
)
async def events_stream(
    request, topic: str = Topic, after_seq: int | None = Query(None, ge=0, le=BIGINT_MAX)
):
    """Server-sent events: `id:` is the seq; resume with `Last-Event-ID` or `after_seq`; `: ping` heartbeats."""
    principal = await sync_to_async(require_scope)(request, "read")
    await sync_to_async(_topic)(topic, principal.user)
    if not origin_allowed(request.headers.get("Origin"), request.get_host(), request.scheme):
        raise HQError("bad_origin", "this origin may not read the event stream", status=403)
    resume = request.headers.get("Last-Event-ID")
    start = after_seq if after_seq is not None else 0
    if resume:
        try:
            start = int(resume)
        except ValueError:
            start = -1
        if not 0 <= start <= BIGINT_MAX:
            raise HQError("bad_last_event_id", "Last-Event-ID must be a seq number", status=400)
    # The stream may last hours: give the pool back the connection that authenticated it.
    await sync_to_async(close_old_connections)()
    token_id = principal.token.pk if principal.token else None
    user_id = None if principal.token else principal.user.pk
    response = StreamingHttpResponse(
        _sse(topic, max(start, 0), token_id, user_id), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class StreamRevoked(Exception):
    """The stream's token was revoked or expired, or its session's user stopped being an active
    operator: the stream ends, with ``error`` saying which."""

    def __init__(self, error: HQError | None = None) -> None:
        super().__init__()
        self.error = error or revoked_error()


async def follow(
    topic: str, after_seq: int, token_id: int | None, user_id: int | None = None
) -> AsyncIterator[list[dict] | None]:
    """The envelopes of ``topic`` after ``after_seq``, then the live ones as they commit, in batches
    (exactly once, in order); ``None`` after ``EVENTS_SSE_PING_SECONDS`` of quiet, so the caller can
    keep proxies open. Raises ``StreamRevoked`` when the stream's token is revoked, or when the
    signed-in operator ``user_id`` (a stream opened without a token) stops being one."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    pending: list[dict] = []

    async def deliver(envelopes: list[dict]) -> None:
        pending.extend(envelopes)

    subscriber = EventSubscriber(layer, channel, deliver)
    relay = get_relay()
    if token_id is not None:
        relay.watch_token(token_id, channel)
    if user_id is not None:
        relay.watch_user(user_id, channel)
    try:
        await subscriber.subscribe(topic, after_seq)
        while True:
            if pending:
                batch, pending[:] = list(pending), []
                yield batch
            try:
                message = await asyncio.wait_for(
                    layer.receive(channel), timeout=settings.EVENTS_SSE_PING_SECONDS
                )
            except TimeoutError:
                yield None
                continue
            if message["type"] == "token.revoked":
                raise StreamRevoked
            if message["type"] == "operator.revoked":
                raise StreamRevoked(
                    HQError("not_an_operator", "this account is no longer an active operator")
                )
            await subscriber.on_batch(message["topic"], message["events"])
    finally:
        if token_id is not None:
            relay.unwatch_token(token_id, channel)
        if user_id is not None:
            relay.unwatch_user(user_id, channel)
        await subscriber.close()


def revoked_error() -> HQError:
    return HQError("token_revoked", "the token of this stream was revoked or expired")


async def _sse(topic: str, after_seq: int, token_id: int | None, user_id: int | None = None):
    yield "retry: 3000\n\n"
    try:
        async for batch in follow(topic, after_seq, token_id, user_id):
            if batch is None:
                yield ": ping\n\n"
                continue
            for env in batch:
                yield f"id: {env['seq']}\nevent: {env['type']}\ndata: {json.dumps(env, cls=DjangoJSONEncoder)}\n\n"
    except StreamRevoked as revoked:
        yield f"event: error\ndata: {json.dumps(revoked.error.as_dict())}\n\n"
