"""A browser's Origin on websockets and SSE must be the HQ itself or a trusted origin, compared on
scheme, host and port: a page served by another port or scheme of the same host is another site."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from juggernaut.asgi import application
from tests.juggernaut.test_events import _sse_open

HQ = b"localhost:8000"


async def ws_connects(raw: str, origin: str, *extra: tuple[bytes, bytes]) -> bool:
    headers = [(b"host", HQ), (b"origin", origin.encode()), (b"authorization", f"Bearer {raw}".encode())]
    comm = WebsocketCommunicator(application, "/ws/events/", headers=headers + list(extra))
    connected, _ = await comm.connect()
    await comm.disconnect()
    return connected


async def sse_status(raw: str, origin: str) -> int:
    comm = await _sse_open(raw, "/api/events/hq/stream", headers=[(b"origin", origin.encode())])
    start = await comm.receive_output(timeout=5)
    await comm.send_input({"type": "http.disconnect"})
    return start["status"]


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_websockets_from_another_port_or_scheme_of_the_same_host(make_token, stop_relays):
    raw = await sync_to_async(make_token)("read")
    assert await ws_connects(raw, "http://localhost:8000")
    for origin in [
        "http://localhost:3000",
        "https://localhost:8000",
        "http://localhost",
        "http://127.0.0.1:8000",
        "null",
        "http://localhost:8000.evil.example",
    ]:
        assert not await ws_connects(raw, origin), origin


@pytest.mark.django_db(transaction=True)
async def test_it_accepts_an_origin_listed_in_csrf_trusted_origins_exactly(make_token, settings, stop_relays):
    settings.CSRF_TRUSTED_ORIGINS = ["http://localhost:3000", "https://*.example.com"]
    raw = await sync_to_async(make_token)("read")
    assert await ws_connects(raw, "http://localhost:3000")
    assert await ws_connects(raw, "https://app.example.com")
    assert not await ws_connects(raw, "http://app.example.com")  # the scheme differs
    assert not await ws_connects(raw, "https://app.example.com:8443")  # the port differs
    assert not await ws_connects(raw, "http://localhost:3001")


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_sse_streams_from_another_port_of_the_same_host(make_token, settings, stop_relays):
    raw = await sync_to_async(make_token)("read")
    assert await sse_status(raw, "http://testserver") == 200
    assert await sse_status(raw, "http://testserver:3000") == 403
    assert await sse_status(raw, "https://testserver") == 403
    settings.CSRF_TRUSTED_ORIGINS = ["http://testserver:3000"]
    assert await sse_status(raw, "http://testserver:3000") == 200


@pytest.mark.django_db(transaction=True)
async def test_it_takes_the_scheme_from_a_trusted_tls_proxy_only(make_token, settings, stop_relays):
    raw = await sync_to_async(make_token)("read")
    forwarded = (b"x-forwarded-proto", b"https")
    assert not await ws_connects(raw, "https://localhost:8000", forwarded)  # no proxy is trusted
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert await ws_connects(raw, "https://localhost:8000", forwarded)
    assert not await ws_connects(raw, "http://localhost:8000", forwarded)
    assert not await ws_connects(raw, "https://localhost:8000")  # the proxy did not say https
