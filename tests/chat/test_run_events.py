"""A run's events through the existing readers (replay, SSE, websocket): its owner's, nobody else's."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from juggernaut.asgi import application
from tests.chat.conftest import execute, send
from tests.fakes.openrouter import Reply


@pytest.fixture
def finished_run(chat, fake_openrouter):
    fake_openrouter.script(Reply(text="All green."))
    return execute(send(chat))


def test_it_replays_a_run_to_its_owner_and_to_no_one_else(client, finished_run, make_token, carol):
    mine = client.get(f"/api/events/{finished_run.topic}", HTTP_AUTHORIZATION=f"Bearer {make_token('read')}")
    assert mine.status_code == 200
    body = mine.json()
    assert [e["type"] for e in body["events"]][0] == "run_started" and body["events"][-1][
        "type"
    ] == "stop_reason"
    assert body["events"][-1]["run_id"] == finished_run.pk and body["last_seq"] == len(body["events"])
    theirs = {"HTTP_AUTHORIZATION": f"Bearer {make_token('read', user=carol)}"}
    for path in [
        f"/api/events/{finished_run.topic}",
        f"/api/events/{finished_run.topic}/stream",
        "/api/events/chat.run.999999",
        "/api/events/chat.run.x",
    ]:
        answer = client.get(path, **theirs)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", path


async def test_it_refuses_a_strangers_websocket_subscription_to_a_run(
    finished_run, make_token, carol, stop_relays
):
    raw = await sync_to_async(make_token)("read", user=carol)
    comm = WebsocketCommunicator(
        application, "/ws/events/", headers=[(b"authorization", f"Bearer {raw}".encode())]
    )
    assert (await comm.connect())[0]
    await comm.send_json_to({"subscribe": [finished_run.topic, "hq"]})
    assert json.loads(await comm.receive_from())["error"]["code"] == "not_found"
    assert json.loads(await comm.receive_from()) == {"subscribed": ["hq"]}
    await comm.disconnect()


async def test_it_streams_a_run_to_its_owner_over_the_websocket(finished_run, make_token, stop_relays):
    raw = await sync_to_async(make_token)("read")
    comm = WebsocketCommunicator(
        application, "/ws/events/", headers=[(b"authorization", f"Bearer {raw}".encode())]
    )
    assert (await comm.connect())[0]
    await comm.send_json_to({"subscribe": [finished_run.topic]})
    types = []
    while "stop_reason" not in types:
        message = json.loads(await comm.receive_from(timeout=10))
        types += [message["type"]] if "seq" in message else []
    assert types[0] == "run_started" and types.count("stop_reason") == 1
    await comm.disconnect()
