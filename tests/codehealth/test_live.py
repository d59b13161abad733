"""The Code Health pages and the Overview's line live over the HQ websocket, each for its viewer:
an operator sees their own repositories change, and never another operator's."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client
from django.utils import timezone

from codehealth import live, services
from codehealth.findings import Finding
from codehealth.models import Repository, Scan
from juggernaut import hq
from juggernaut.asgi import application
from juggernaut.events.relay import relays_stop

UNUSED = Finding("lint", "ruff", "app/x.py", 1, "F401", 100, "`os` imported but unused", fixable=True)


def _cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def _open(user, page: str) -> tuple[WebsocketCommunicator, str]:
    cookie = await sync_to_async(_cookie)(user)
    comm = WebsocketCommunicator(
        application, f"/ws/hq/?page={page}", headers=[(b"cookie", f"sessionid={cookie}".encode())]
    )
    connected, _ = await comm.connect()
    assert connected
    return comm, await comm.receive_from(timeout=10)


async def _until(comm: WebsocketCommunicator, needle: str) -> str:
    """The first message holding ``needle`` (earlier ones are other events' renders)."""
    for _ in range(10):
        html = await comm.receive_from(timeout=10)
        if needle in html:
            return html
    raise AssertionError(f"no message with {needle!r}")


async def _drain(comm: WebsocketCommunicator) -> list[str]:
    """Every message the socket has been sent so far."""
    got = []
    while not await comm.receive_nothing(timeout=0.3):
        got.append(await comm.receive_from())
    return got


def _line(html: str) -> str:
    """The code-health line of an Overview message."""
    return html.split('id="hq-area-codehealth"', 1)[1].split("</li>", 1)[0]


def _scan(repository, *findings):
    row = Scan.objects.create(repository=repository, started_at=timezone.now())
    return services.scan_record(row, list(findings))


@pytest.fixture
def dave(django_user_model):
    return django_user_model.objects.create_user("dave", "dave@example.com", "pw-dave-123456", is_staff=True)


@pytest.fixture
async def quiet(settings):
    settings.HQ_REFRESH_SECONDS = 3600  # every message in these tests comes from an event or the connect
    yield
    await relays_stop()
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_the_overview_line_is_about_the_viewers_own_repositories(
    alice, dave, quiet, tmp_path, local_repository
):
    shop = await sync_to_async(local_repository)(alice, tmp_path, name="shop")
    await sync_to_async(services._scan_failed)(
        await sync_to_async(Scan.objects.create)(repository=shop, started_at=timezone.now()),
        "git clone failed",
    )
    alices, alice_first = await _open(alice, "overview")
    daves, dave_first = await _open(dave, "overview")
    assert "The last scan of shop failed" in _line(alice_first)
    assert "shop" not in _line(dave_first) and "No repository of yours is registered" in _line(dave_first)
    assert "shop" not in dave_first  # nor in the activity feed: code-health events carry ids, not names
    assert f"Code health: repository #{shop.pk} could not be scanned" in dave_first

    await sync_to_async(_scan)(shop, UNUSED)  # publishes scan_finished on the codehealth topic
    alice_line = _line(await _until(alices, 'id="hq-area-codehealth"'))
    dave_line = _line(await _until(daves, 'id="hq-area-codehealth"'))
    assert "lowest score" in alice_line and "shop" in alice_line
    assert "shop" not in dave_line and "No repository of yours" in dave_line
    for comm in (alices, daves):
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_index_follows_a_scan_from_queued_to_scored(
    alice, dave, quiet, tmp_path, monkeypatch, local_repository
):
    monkeypatch.setattr(
        services, "async_task", lambda *a, **kw: None
    )  # no jobs process: the socket shows the queue
    shop = await sync_to_async(local_repository)(alice, tmp_path, name="shop")
    comm, first = await _open(alice, live.INDEX_PAGE)
    stranger, stranger_first = await _open(dave, live.INDEX_PAGE)
    assert f'id="codehealth-repository-{shop.pk}"' in first and "never" in first
    assert "shop" not in stranger_first

    await sync_to_async(services.scan_request)(shop)
    queued = await _until(comm, "codehealth-repositories")
    assert "queued" in queued

    (tmp_path / "app.py").write_text("import os\n")
    scan = await sync_to_async(services.repository_scan)(
        await sync_to_async(Repository.objects.get)(pk=shop.pk), analyse=lambda path: [UNUSED]
    )
    scored = await _until(comm, f"{scan.score}</td>")
    assert "queued" not in scored.split(f'id="codehealth-repository-{shop.pk}"')[1].split("</tr>")[0]
    seen = await _drain(stranger)
    assert seen and not any("shop" in html for html in seen)  # redrawn too, with their own (no) repositories
    for c in (comm, stranger):
        await c.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_repository_page_redraws_on_its_own_scans_only(
    alice, dave, quiet, tmp_path, local_repository
):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shop = await sync_to_async(local_repository)(alice, tmp_path / "a", name="shop")
    other = await sync_to_async(local_repository)(alice, tmp_path / "b", name="other")
    page = live.page_name(shop.pk, "lint")
    comm, first = await _open(alice, page)
    assert 'id="codehealth-summary"' in first and "Not scanned yet" in first
    stranger, stranger_first = await _open(dave, page)
    assert stranger_first == ""  # not theirs: nothing rendered, not even the name

    await sync_to_async(_scan)(other, UNUSED)
    assert await comm.receive_nothing(timeout=0.5)  # another repository's scan: nothing to redraw
    await sync_to_async(_scan)(shop, UNUSED)
    html = await _until(comm, 'id="codehealth-findings"')
    assert "F401" in html and 'hx-swap-oob="true"' in html and "Score of shop" in html
    assert 'aria-current="true">lint' in html  # the page's filter is kept in the redraw
    assert await stranger.receive_nothing(timeout=0.3)
    for c in (comm, stranger):
        await c.disconnect()


@pytest.mark.django_db
def test_a_scan_queued_long_ago_that_never_started_is_said(alice, tmp_path, monkeypatch, local_repository):
    monkeypatch.setattr(services, "async_task", lambda *a, **kw: None)
    shop = local_repository(alice, tmp_path, name="shop")
    services.scan_request(shop)
    assert hq.AREAS["codehealth"].status(alice).state == "idle"  # just queued: not news yet
    Repository.objects.filter(pk=shop.pk).update(scan_requested_at=timezone.now() - timedelta(minutes=6))
    status = hq.AREAS["codehealth"].status(alice)
    assert status.state == "warn" and "queued long ago" in status.text and "qcluster" in status.detail
    # the time-based state reaches an open page by itself: it is in the timed render of both pages
    assert "queued long ago" in hq.render_timed("overview", alice)
    assert "queued long ago" in hq.render_timed(live.INDEX_PAGE, alice)
    services.repository_scan(Repository.objects.get(pk=shop.pk), analyse=lambda path: [])
    assert hq.AREAS["codehealth"].status(alice).state == "ok"


@pytest.mark.django_db
def test_scan_now_from_the_page_answers_with_the_flash_and_fresh_fragments(
    alice_client, alice, tmp_path, monkeypatch, local_repository
):
    monkeypatch.setattr(services, "async_task", lambda *a, **kw: None)
    shop = local_repository(alice, tmp_path, name="shop")
    headers = {"HTTP_HX_REQUEST": "true"}
    index = alice_client.post(f"/codehealth/{shop.pk}/scan/", {"page": live.INDEX_PAGE}, **headers)
    body = index.content.decode()
    assert index.status_code == 200 and 'id="hq-flash"' in body and "is queued" in body
    assert 'id="codehealth-repositories" class="card" hx-swap-oob="true"' in body and "queued" in body
    detail = alice_client.post(f"/codehealth/{shop.pk}/scan/", {"page": live.page_name(shop.pk)}, **headers)
    assert 'id="codehealth-summary"' in detail.content.decode()
    assert "manage.py qcluster" in detail.content.decode()
