"""Websockets and SSE streams under attack: bad frames get an error frame, a crash closes the socket
with 1011, and either way the relay stops watching the socket's topics; revoking a token closes its
websockets and SSE streams within seconds."""

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from juggernaut.asgi import application
from juggernaut.events import publish
from juggernaut.events.relay import get_relay
from juggernaut.models import ApiToken
from tests.juggernaut.test_events import _sse_open, ws_connect

TOPICS = ["crash.a", "crash.b"]
BAD_FRAMES = [
    ('{"subscribe": ["crash.c"], "after_seq": {"crash.c": 1e999}}', "not_finite"),
    ('{"subscribe": ["crash.c"], "after_seq": {"crash.c": NaN}}', "not_finite"),
    ('{"subscribe": ["crash.c"], "after_seq": {"crash.c": 9223372036854775808}}', "bad_request"),
    ('{"subscribe": ["crash.c"], "after_seq": {"crash.c": 1.5}}', "bad_request"),
    ("[" * 100_000 + "]" * 100_000, "frame_too_large"),
    ('{"subscribe": ["crash.c"], "x": ' + "[" * 5_000 + "]" * 5_000 + "}", "too_deep"),
    ('{"subscribe": ["crash.c"], "pad": "' + "x" * 20_000 + '"}', "frame_too_large"),
    ('{"subscribe": ["crash\\u0000c"]}', "nul_character"),
]


async def subscribed(comm: WebsocketCommunicator) -> None:
    await comm.send_json_to({"subscribe": TOPICS})
    assert json.loads(await comm.receive_from(timeout=5)) == {"subscribed": TOPICS}
    assert all(get_relay().refs[t] == 1 for t in TOPICS)


def relay_watches(*topics: str) -> bool:
    relay = get_relay()
    return any(t in relay.refs or t in relay.watermarks for t in topics)


@pytest.mark.django_db(transaction=True)
async def test_it_answers_every_bad_frame_with_an_error_and_stays_consistent(make_token, stop_relays):
    comm = await ws_connect(await sync_to_async(make_token)("read"))
    await subscribed(comm)
    for frame, code in BAD_FRAMES:
        await comm.send_to(text_data=frame)
        reply = json.loads(await comm.receive_from(timeout=5))
        assert reply["error"]["code"] == code, frame[:60]
    await comm.send_to(bytes_data=b"\x00\x01binary")
    assert json.loads(await comm.receive_from(timeout=5))["error"]["code"] == "bad_request"
    # Still open and still subscribed to exactly what it had; nothing half-joined.
    await sync_to_async(publish)("crash.a", "after")
    assert json.loads(await comm.receive_from(timeout=5))["type"] == "after"
    assert not relay_watches("crash.c")
    await comm.disconnect()
    assert not relay_watches(*TOPICS)


@pytest.mark.django_db(transaction=True)
async def test_it_closes_a_crashed_consumer_with_1011_and_unwatches_its_topics(
    make_token,
    stop_relays,
    monkeypatch,
):
    comm = await ws_connect(await sync_to_async(make_token)("read"))
    await subscribed(comm)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away mid-delivery")

    # A gap forces the consumer to read the log, which now fails inside its handler.
    await sync_to_async(publish)("crash.a", "one")
    assert json.loads(await comm.receive_from(timeout=5))["type"] == "one"
    monkeypatch.setattr("juggernaut.events.consumers.events_after", broken)
    await get_relay().layer.group_send(
        "ev." + __import__("hashlib").sha1(b"crash.a").hexdigest(),
        {"type": "events.batch", "topic": "crash.a", "events": [{"seq": 5, "type": "x"}]},
    )
    reply = json.loads(await comm.receive_from(timeout=5))
    assert reply["error"]["code"] == "internal_error"
    closed = await comm.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 1011}
    assert not relay_watches(*TOPICS)
    await comm.wait(timeout=5)


@pytest.mark.django_db(transaction=True)
async def test_it_unwatches_topics_when_a_subscription_fails_halfway(make_token, stop_relays, monkeypatch):
    comm = await ws_connect(await sync_to_async(make_token)("read"))

    def broken(*args, **kwargs):
        raise RuntimeError("replay failed")

    monkeypatch.setattr("juggernaut.events.consumers.events_after", broken)
    await comm.send_json_to({"subscribe": TOPICS})
    errors = [json.loads(await comm.receive_from(timeout=5)) for _ in TOPICS]
    assert {e["error"]["code"] for e in errors} == {"subscribe_failed"}
    assert json.loads(await comm.receive_from(timeout=5)) == {"subscribed": []}
    assert not relay_watches(*TOPICS)
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_closes_websockets_and_sse_streams_when_their_token_is_revoked(
    alice,
    make_token,
    stop_relays,
):
    raw = await sync_to_async(make_token)("read")
    kept = await sync_to_async(make_token)("read")
    admin = await sync_to_async(make_token)("admin")
    doomed = await ws_connect(raw)
    await doomed.send_json_to({"subscribe": ["hq"]})
    assert "subscribed" in json.loads(await doomed.receive_from(timeout=5))
    hq_socket = WebsocketCommunicator(application, f"/ws/events/?token={raw}")
    assert (await hq_socket.connect())[0]
    survivor = await ws_connect(kept)
    sse = await _sse_open(raw, "/api/events/engine/stream")
    start = await sse.receive_output(timeout=5)
    assert start["status"] == 200
    token_id = await sync_to_async(lambda: ApiToken.objects.get(prefix=raw[:10]).pk)()

    revoked_at = time.monotonic()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {admin}")
    response = await sync_to_async(api.delete)(f"/api/tokens/{token_id}")
    assert response.status_code == 200

    for comm in [doomed, hq_socket]:
        frame = json.loads(await comm.receive_from(timeout=6))
        while "seq" in frame:  # the hq topic's own "token_revoked" event may come first
            frame = json.loads(await comm.receive_from(timeout=6))
        assert frame["error"]["code"] == "token_revoked"
        assert await comm.receive_output(timeout=2) == {"type": "websocket.close", "code": 4401}
    body = b""
    while b"token_revoked" not in body:
        message = await sse.receive_output(timeout=6)
        body += message.get("body", b"")
    assert b"event: error" in body
    assert not (await sse.receive_output(timeout=2)).get("more_body")  # the stream ended
    assert time.monotonic() - revoked_at < 6
    assert token_id not in get_relay().token_channels

    # Another token's socket is untouched.
    await survivor.send_json_to({"subscribe": ["hq"], "after_seq": {"hq": 1}})
    assert json.loads(await survivor.receive_from(timeout=5)) == {"subscribed": ["hq"]}
    await survivor.disconnect()
    await asyncio.sleep(0)
