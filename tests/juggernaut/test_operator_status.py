"""Tokens live only as long as their owner is an active operator, and an admin token is an admin's.

Driven as a demoted operator would try it: the API, the paid completion, a new websocket, and the
websockets and SSE streams already open when the demotion happens.
"""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from juggernaut.asgi import application
from juggernaut.events.relay import get_relay
from juggernaut.models import ApiToken
from tests.juggernaut.test_events import _sse_open, ws_connect

MESSAGES = [{"role": "user", "content": "hello"}]


def demote(user, **change) -> None:
    for field, value in (change or {"is_staff": False}).items():
        setattr(user, field, value)
    user.save()


@pytest.mark.django_db
@pytest.mark.parametrize("change", [{"is_staff": False}, {"is_active": False}])
def test_it_refuses_every_token_of_a_user_who_stops_being_an_operator(client, alice, make_token, change):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {make_token('read', 'write')}"}
    assert client.get("/api/events/hq", **headers).status_code == 200
    demote(alice, **change)
    body = json.dumps({"mode": "ops", "messages": MESSAGES})
    for response in [
        client.get("/api/events/hq", **headers),
        client.get("/api/chat/sessions", **headers),
        client.post("/api/chat/sessions", json.dumps({"mode": "ops"}), "application/json", **headers),
        client.post("/api/routing/complete", body, "application/json", **headers),
    ]:
        assert response.status_code == 401
        assert response.json()["error"] == {
            "code": "unauthorized",
            "message": "sign in, or send a valid bearer token",
            "details": None,
        }
    # Promoted again, the same tokens work again: nothing was revoked, only suspended.
    demote(alice, is_staff=True, is_active=True)
    assert client.get("/api/events/hq", **headers).status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_a_new_websocket_of_a_demoted_operator(alice, make_token, stop_relays):
    raw = await sync_to_async(make_token)("read")
    await sync_to_async(demote)(alice)
    comm = WebsocketCommunicator(
        application, "/ws/events/", headers=[(b"authorization", f"Bearer {raw}".encode())]
    )
    connected, _ = await comm.connect()
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_it_closes_the_open_websockets_and_sse_streams_of_a_demoted_operator(
    alice, make_token, stop_relays
):
    raw = await sync_to_async(make_token)("read")
    socket = await ws_connect(raw)
    await socket.send_json_to({"subscribe": ["hq"]})
    assert "subscribed" in json.loads(await socket.receive_from(timeout=5))
    sse = await _sse_open(raw, "/api/events/engine/stream")
    assert (await sse.receive_output(timeout=5))["status"] == 200
    token_id = await sync_to_async(lambda: ApiToken.objects.get(prefix=raw[:10]).pk)()

    await sync_to_async(demote)(alice)

    frame = json.loads(await socket.receive_from(timeout=6))
    assert frame["error"]["code"] == "token_revoked"
    assert await socket.receive_output(timeout=2) == {"type": "websocket.close", "code": 4401}
    body = b""
    while b"token_revoked" not in body:
        body += (await sse.receive_output(timeout=6)).get("body", b"")
    assert not (await sse.receive_output(timeout=2)).get("more_body")  # the stream ended
    assert token_id not in get_relay().token_channels


@pytest.mark.django_db(transaction=True)
async def test_it_closes_the_open_session_sockets_and_streams_of_a_demoted_operator(alice, stop_relays):
    cookie = await sync_to_async(_session)(alice)
    page = WebsocketCommunicator(
        application, "/ws/hq/", headers=[(b"cookie", f"sessionid={cookie}".encode())]
    )
    assert (await page.connect())[0]
    await page.receive_from(timeout=5)  # the page's resync
    events = WebsocketCommunicator(
        application, "/ws/events/", headers=[(b"cookie", f"sessionid={cookie}".encode())]
    )
    assert (await events.connect())[0]
    sse = await _sse_open(
        "", "/api/events/engine/stream", headers=[(b"cookie", f"sessionid={cookie}".encode())]
    )
    assert (await sse.receive_output(timeout=5))["status"] == 200

    await sync_to_async(demote)(alice)

    for socket in [page, events]:
        frame = await socket.receive_from(timeout=6)
        while '"error"' not in frame:  # a live fragment or event may come first
            frame = await socket.receive_from(timeout=6)
        assert json.loads(frame)["error"]["code"] == "not_an_operator"
        assert await socket.receive_output(timeout=2) == {"type": "websocket.close", "code": 4401}
    body = b""
    while b"not_an_operator" not in body:
        body += (await sse.receive_output(timeout=6)).get("body", b"")
    assert not (await sse.receive_output(timeout=2)).get("more_body")
    assert alice.pk not in get_relay().user_channels


def _session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.mark.django_db
def test_it_lets_only_an_admin_mint_an_admin_token(client, alice_client, admin_client, bearer):
    body = {"name": "root", "scopes": ["admin"]}
    refused = alice_client.post("/api/tokens", body, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "only an admin may create a token with the 'admin' scope"
    # An operator's own admin-scope token (minted before the rule) cannot mint one either.
    legacy = client.post("/api/tokens", body, content_type="application/json", **bearer("admin"))
    assert legacy.status_code == 403
    assert not ApiToken.objects.filter(name="root").exists()

    minted = admin_client.post("/api/tokens", body, content_type="application/json")
    assert minted.status_code == 201 and minted.json()["scopes"] == ["admin"]
    assert 'value="admin"' in admin_client.get("/settings/").content.decode()
    page = admin_client.post("/settings/tokens/", {"name": "root-2", "scopes": ["admin"]})
    assert page.status_code == 302 and ApiToken.objects.filter(name="root-2").exists()


@pytest.mark.django_db
def test_it_refuses_an_admin_token_for_an_operator_in_the_django_admin(admin_client, alice):
    form = {"name": "root", "user": alice.pk, "scopes": ["admin"], "days": "30"}
    response = admin_client.post("/admin/juggernaut/apitoken/add/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "Only an admin (superuser) may hold a token" in response.content.decode()
    assert not ApiToken.objects.exists()
