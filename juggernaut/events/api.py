"""The event log over HTTP, mounted at ``/api/events``: replay as JSON pages, and live as server-sent events.

Both read the same log the websockets read (see ``juggernaut.events``); the SSE stream goes through an
``EventSubscriber``, so it resumes from ``Last-Event-ID`` with nothing lost and nothing repeated.
"""

import asyncio
import json

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from ninja import Router, Schema

from juggernaut.auth import origin_allowed, require_scope
from juggernaut.errors import HQError
from juggernaut.events import EventError, events_after, last_seqs, topic_validate
from juggernaut.events.consumers import EventSubscriber

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


def _topic(topic: str) -> str:
    try:
        return topic_validate(topic)
    except EventError as exc:
        raise HQError("bad_topic", str(exc), status=400) from exc


@router.get("/{topic}", response=EventPageOut)
def events_replay(request, topic: str, after_seq: int = 0, limit: int = 100):
    """Events of a topic with `seq > after_seq`, oldest first (at most `limit`, up to 1000)."""
    require_scope(request, "read")
    _topic(topic)
    if limit < 1 or limit > 1000:
        raise HQError("bad_limit", "limit must be between 1 and 1000", status=422)
    return {
        "topic": topic,
        "last_seq": last_seqs([topic]).get(topic, 0),
        "events": events_after(topic, max(after_seq, 0), limit=limit),
    }


@router.get("/{topic}/stream", response={200: None})
async def events_stream(request, topic: str, after_seq: int | None = None):
    """Server-sent events: `id:` is the seq; resume with `Last-Event-ID` or `after_seq`; `: ping` heartbeats."""
    await sync_to_async(require_scope)(request, "read")
    _topic(topic)
    if not origin_allowed(request.headers.get("Origin"), request.get_host()):
        raise HQError("bad_origin", "this origin may not read the event stream", status=403)
    resume = request.headers.get("Last-Event-ID")
    start = after_seq if after_seq is not None else 0
    if resume:
        try:
            start = int(resume)
        except ValueError as exc:
            raise HQError("bad_last_event_id", "Last-Event-ID must be a seq number", status=400) from exc
    response = StreamingHttpResponse(_sse(topic, max(start, 0)), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def _sse(topic: str, after_seq: int):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    pending: list[dict] = []

    async def deliver(envelopes: list[dict]) -> None:
        pending.extend(envelopes)

    subscriber = EventSubscriber(layer, channel, deliver)
    try:
        yield "retry: 3000\n\n"
        await subscriber.subscribe(topic, after_seq)
        while True:
            while pending:
                env = pending.pop(0)
                yield f"id: {env['seq']}\nevent: {env['type']}\ndata: {json.dumps(env, cls=DjangoJSONEncoder)}\n\n"
            try:
                message = await asyncio.wait_for(
                    layer.receive(channel), timeout=settings.EVENTS_SSE_PING_SECONDS
                )
            except TimeoutError:
                yield ": ping\n\n"
                continue
            await subscriber.on_batch(message["topic"], message["events"])
    finally:
        await subscriber.close()
