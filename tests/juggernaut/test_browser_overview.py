"""In Chromium: sign in, open the Overview, and watch it change live when an event is published."""

import signal
import threading

import pytest
from django.db import connection

from juggernaut.events import publish
from tests.conftest import DaphneServer, sign_in

pytestmark = pytest.mark.browser


def publish_from_another_thread(topic: str, type: str, data: dict) -> None:
    def run() -> None:
        try:
            publish(topic, type, data)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)


def test_it_shows_published_events_without_a_reload(signed_in_page, hq_server):
    page = signed_in_page
    assert page.title() == "Overview · Juggernaut HQ"
    page.wait_for_selector("#live-indicator.live-open")
    assert page.locator("#hq-activity-empty").is_visible()
    page.evaluate("window.__marker = 'same page'")  # gone if the page reloads

    publish_from_another_thread("hq", "notice", {"message": "deploy finished on api-7"})

    item = page.locator("#hq-activity .activity-item").first
    item.wait_for()
    assert "Notice: deploy finished on api-7" in item.inner_text()
    assert not page.locator("#hq-activity-empty").is_visible()
    assert page.evaluate("window.__marker") == "same page"


def test_it_shows_one_status_line_per_area_with_honest_empty_states(signed_in_page):
    page = signed_in_page
    lines = page.locator(".area-lines .area-line")
    assert lines.count() == 6
    assert "No diagnosis yet." in page.locator("#hq-area-selfheal").inner_text()
    assert (
        "No repository of yours is registered: nothing is analysed."
        in page.locator("#hq-area-codehealth").inner_text()
    )
    assert "No chat runs yet." in page.locator("#hq-area-chat").inner_text()
    nav = page.locator("nav.nav").inner_text()
    for label in [
        "Overview",
        "Chat",
        "Engine",
        "Self-Heal",
        "System Health",
        "Code Health",
        "Routing & Costs",
        "Settings",
        "Admin",
    ]:
        assert label in nav


def test_it_shows_the_connection_state_and_reconnects_with_a_resync(page, alice, transactional_db):
    """The web process dies (a deploy, a crash): the page says so, reconnects, and redraws what it missed."""
    server = DaphneServer().start()
    try:
        sign_in(page, server.url)
        page.wait_for_selector("#live-indicator.live-open")
        server.stop(signal.SIGKILL)
        page.wait_for_selector("#live-indicator.live-closed")
        assert "disconnected" in page.locator("#live-indicator").inner_text()
        publish_from_another_thread("hq", "notice", {"message": "happened while offline"})
        server.start()
        page.wait_for_selector("#live-indicator.live-open", timeout=40000)
        page.locator("#hq-activity .activity-item", has_text="happened while offline").wait_for()
    finally:
        server.close()
