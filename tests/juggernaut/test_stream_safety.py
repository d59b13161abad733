"""Websockets and SSE streams under attack: bad frames get an error frame, a crash closes the socket
with 1011, and either way the relay stops watching the socket's topics; revoking a token closes its
websockets and SSE streams within seconds. In-process through the ASGI app, then over real sockets to a
live daphne server."""

import asyncio
import json
import time

import pytest
import requests
import websockets.sync.client
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from juggernaut.asgi import application
from juggernaut.events import publish
from juggernaut.events.relay import get_relay
from juggernaut.models import ApiToken
from tests.conftest import in_thread
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
    # The server answers the close with a disconnect; the consumer then ends without waiting out a timer.
    await comm.disconnect(code=1011)


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


# --- the same, over a real socket to the real server (daphne) --------------------------------------


def live_socket(server: str, raw_token: str):
    """A websocket to ``/ws/events/`` on the live server, authenticated as a non-browser client."""
    return websockets.sync.client.connect(
        server.replace("http://", "ws://") + "/ws/events/",
        additional_headers={"Authorization": f"Bearer {raw_token}"},
        max_size=None,
        open_timeout=10,
    )


def next_frame(socket) -> dict:
    return json.loads(socket.recv(timeout=10))


@pytest.mark.process  # the live daphne server
def test_it_refuses_bad_frames_over_a_real_socket_and_keeps_serving(hq_server, make_token, transactional_db):
    raw = make_token("read")
    with live_socket(hq_server, raw) as socket:
        socket.send(json.dumps({"subscribe": ["live.a"]}))
        assert next_frame(socket) == {"subscribed": ["live.a"]}
        socket.send('{"subscribe": ["live.c"], "after_seq": {"live.c": 1e999}}')
        assert next_frame(socket)["error"]["code"] == "not_finite"
        socket.send("[" * 100_000 + "]" * 100_000)
        assert next_frame(socket)["error"]["code"] == "frame_too_large"
        # Nothing half-joined: an event on the refused topic never comes, the subscribed one does.
        in_thread(lambda: publish("live.c", "refused"))
        in_thread(lambda: publish("live.a", "after"))
        frame = next_frame(socket)
        assert (frame["topic"], frame["type"]) == ("live.a", "after")
    # The server is still responsive, and a fresh socket subscribes to the refused topic cleanly,
    # replaying from the start what the first socket never got.
    assert requests.get(hq_server + "/api/health", timeout=5).status_code == 200
    with live_socket(hq_server, raw) as again:
        again.send(json.dumps({"subscribe": ["live.c"], "after_seq": {"live.c": 0}}))
        frame = next_frame(again)
        assert (frame["topic"], frame["type"]) == ("live.c", "refused")
        assert next_frame(again) == {"subscribed": ["live.c"]}


@pytest.mark.process  # the live daphne server
def test_it_closes_a_revoked_tokens_socket_and_sse_stream_over_the_real_server(
    hq_server, alice, make_token, transactional_db
):
    raw, admin = make_token("read"), make_token("admin")
    token_id = ApiToken.objects.get(prefix=raw[:10]).pk
    sse = requests.get(
        hq_server + "/api/events/engine/stream",
        headers={"Authorization": f"Bearer {raw}"},
        stream=True,
        timeout=10,  # a read that waits longer than this fails the test
    )
    assert sse.status_code == 200
    with live_socket(hq_server, raw) as socket:
        socket.send(json.dumps({"subscribe": ["engine"]}))
        assert next_frame(socket) == {"subscribed": ["engine"]}

        revoked = requests.delete(
            f"{hq_server}/api/tokens/{token_id}", headers={"Authorization": f"Bearer {admin}"}, timeout=10
        )
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"

        assert next_frame(socket)["error"]["code"] == "token_revoked"
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd.code == 4401
    lines = list(sse.iter_lines(decode_unicode=True))  # ends: the server closed the stream
    assert "event: error" in lines and any("token_revoked" in line for line in lines)
    # The revoked token opens nothing new.
    assert (
        requests.get(
            hq_server + "/api/events/engine", headers={"Authorization": f"Bearer {raw}"}, timeout=5
        ).status_code
        == 401
    )
