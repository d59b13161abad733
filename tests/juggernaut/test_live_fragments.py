"""The HQ's live fragments: rendered once per batch of events per page, the same HTML to every socket."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from juggernaut import hq
from juggernaut.asgi import application
from juggernaut.events import publish
from juggernaut.events.consumers import SharedRenders
from juggernaut.events.relay import relays_stop


@pytest.fixture
async def probe_page(settings):
    """A page ``probe`` whose one fragment says how many times it was rendered (and no timed
    refresh during the test, so every message on a socket comes from an event)."""
    settings.HQ_REFRESH_SECONDS = 3600
    calls: list[int] = []

    def render(envelopes: list[dict]) -> str:
        calls.append(len(envelopes))
        seqs = ",".join(str(e["seq"]) for e in envelopes)
        return f'<div id="probe" hx-swap-oob="true">render {len(calls)} of {seqs}</div>'

    hq.fragments_register("probe", render, page="probe")
    yield calls
    hq.FRAGMENTS.pop("probe", None)
    await relays_stop()
    await sync_to_async(connections.close_all)()


async def _open(cookie: str, page: str) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(
        application, f"/ws/hq/?page={page}", headers=[(b"cookie", f"sessionid={cookie}".encode())]
    )
    connected, _ = await comm.connect()
    assert connected
    await comm.receive_from()  # the resync
    return comm


def _session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.mark.django_db(transaction=True)
async def test_it_renders_a_batch_once_for_every_socket_of_the_page(alice, probe_page):
    cookie = await sync_to_async(_session)(alice)
    sockets = [await _open(cookie, "probe") for _ in range(5)]
    other = await _open(cookie, "overview")
    renders_before = SharedRenders.of_running_loop().count

    await sync_to_async(publish)("probe", "changed", {"n": 1})
    got = [await s.receive_from(timeout=10) for s in sockets]

    overview = await other.receive_from(timeout=10)

    assert got == ['<div id="probe" hx-swap-oob="true">render 1 of 1</div>'] * 5
    assert probe_page == [1]  # one render for five sockets
    assert 'id="probe"' not in overview  # the Overview renders its own fragments, not the probe's
    assert SharedRenders.of_running_loop().count - renders_before == 2  # one per page
    for comm in [*sockets, other]:
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_renders_each_new_batch_again(alice, probe_page):
    cookie = await sync_to_async(_session)(alice)
    sockets = [await _open(cookie, "probe") for _ in range(2)]
    for n in (1, 2):
        await sync_to_async(publish)("probe", "changed", {"n": n})
        got = {await s.receive_from(timeout=10) for s in sockets}
        assert got == {f'<div id="probe" hx-swap-oob="true">render {n} of {n}</div>'}
    assert probe_page == [1, 1]
    for comm in sockets:
        await comm.disconnect()


@pytest.fixture
async def timed_page(settings):
    """A page ``clock`` whose one fragment changes by time alone (``state`` says how it reads now)."""
    settings.HQ_REFRESH_SECONDS = 0.1
    state = {"text": "worker quiet for <time datetime='x'>3 s</time>"}

    def timed() -> str:
        return f'<div id="clock" hx-swap-oob="true">{state["text"]}</div>'

    hq.fragments_register("clock", lambda envelopes: "", resync=timed, page="clock", timed=timed)
    yield state
    hq.FRAGMENTS.pop("clock", None)
    await relays_stop()
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_the_first_timed_refresh_does_not_resend_what_the_connect_just_sent(alice, timed_page):
    cookie = await sync_to_async(_session)(alice)
    comm = await _open(cookie, "clock")
    # Several refresh intervals pass; only the age in the fragment changed, so nothing is sent.
    timed_page["text"] = "worker quiet for <time datetime='x'>4 s</time>"
    assert await comm.receive_nothing(timeout=0.5)
    timed_page["text"] = "worker silent: restart it"
    assert (
        await comm.receive_from(timeout=5)
        == '<div id="clock" hx-swap-oob="true">worker silent: restart it</div>'
    )
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_per_viewer_page_is_rendered_once_per_viewer_and_shared_within(
    alice, django_user_model, settings
):
    settings.HQ_REFRESH_SECONDS = 3600
    dave = await sync_to_async(django_user_model.objects.create_user)(
        "dave", "d@example.com", "pw-dave-123456", is_staff=True
    )
    calls: list[str] = []

    def render(envelopes: list[dict], *, viewer) -> str:
        calls.append(viewer.username)
        return f'<div id="mine" hx-swap-oob="true">for {viewer.username}</div>'

    hq.fragments_register("mine", render, page="mine", per_viewer=True)
    shared: list[int] = []
    hq.fragments_register(
        "plain", lambda envelopes: shared.append(1) or '<div id="plain">same</div>', page="mine"
    )
    try:
        alices = [await _open(await sync_to_async(_session)(alice), "mine") for _ in range(3)]
        daves = await _open(await sync_to_async(_session)(dave), "mine")
        await sync_to_async(publish)("mine", "changed", {})
        assert [await s.receive_from(timeout=10) for s in alices] == [
            '<div id="mine" hx-swap-oob="true">for alice</div>'
        ] * 3
        assert await daves.receive_from(timeout=10) == '<div id="mine" hx-swap-oob="true">for dave</div>'
        assert sorted(calls) == ["alice", "dave"]  # three sockets of one viewer share one render
        # A batch the per-viewer parts do not follow is one render for every viewer of the page.
        await sync_to_async(publish)("plain", "changed", {})
        got = [await s.receive_from(timeout=10) for s in [*alices, daves]]
        assert got == ['<div id="plain">same</div>'] * 4 and shared == [1]
        for comm in [*alices, daves]:
            await comm.disconnect()
    finally:
        hq.FRAGMENTS.pop("mine", None)
        hq.FRAGMENTS.pop("plain", None)
        await relays_stop()
        await sync_to_async(connections.close_all)()
