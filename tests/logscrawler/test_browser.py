"""System Health in Chromium against a live daphne: an error pushed through the API appears by itself."""

import json
import os
import threading
from datetime import UTC, datetime

import pytest
import requests
from django.db import connection
from playwright.sync_api import expect

from logscrawler.models import LogService

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("HQ_SCREENSHOT_DIR")


def test_it_shows_a_new_error_live_and_resolves_it(signed_in_page, hq_server, make_token):
    page = signed_in_page
    LogService.objects.create(name="api")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(hq_server + "/logs/")
    expect(page.locator("#logs-attention")).to_contain_text("Nothing new")
    expect(page.locator("body")).to_have_attribute("data-live", "open")

    token = make_token("write")
    body = "\n".join(
        json.dumps(
            {
                "service": "api",
                "timestamp": datetime.now(UTC).isoformat(),
                "message": m,
                "severity": "error",
                "id": m,
            }
        )
        for m in ("checkout 41 failed: card declined", "checkout 42 failed: card declined")
    )
    sent: list[int] = []

    def push() -> None:
        try:
            answer = requests.post(
                hq_server + "/api/logs/ingest",
                data=body,
                timeout=30,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
            )
            sent.append(answer.status_code)
        finally:
            connection.close()

    thread = threading.Thread(target=push)
    thread.start()
    thread.join(30)
    assert sent == [200]
    attention = page.locator("#logs-attention")
    expect(attention).to_contain_text("checkout <*> failed: card declined")
    expect(page.locator("#logs-alerts")).to_contain_text("new error")
    expect(page.locator("#logs-top-1h")).to_contain_text("checkout")
    if SHOTS:
        for width in (1440, 390):
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=f"{SHOTS}/logs-{width}.png", full_page=True)
        page.set_viewport_size({"width": 1280, "height": 860})
        detail = page.context.new_page()
        detail.goto(hq_server + page.locator("#logs-attention a").first.get_attribute("href"))
        for width in (1440, 390):
            detail.set_viewport_size({"width": width, "height": 900})
            detail.screenshot(path=f"{SHOTS}/logs-detail-{width}.png", full_page=True)
        detail.close()

    attention.get_by_role("button", name="Resolve").click()
    expect(page.locator("#hq-flash")).to_contain_text("marked resolved", timeout=15000)
    expect(page.locator("#logs-attention")).to_contain_text("Nothing new")
    expect(page.locator("#logs-alerts")).to_contain_text("No open alerts")
    assert errors == []


def test_it_keeps_an_errors_page_live_without_console_errors(signed_in_page, hq_server, make_token):
    page = signed_in_page
    LogService.objects.create(name="api")
    token = make_token("write")

    def push(message_id: str) -> None:
        line = {
            "service": "api",
            "timestamp": datetime.now(UTC).isoformat(),
            "message": "checkout 41 failed: card declined",
            "severity": "error",
            "id": message_id,
        }
        try:
            answer = requests.post(
                hq_server + "/api/logs/ingest",
                data=json.dumps(line),
                timeout=30,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
            )
            assert answer.status_code == 200
        finally:
            connection.close()

    thread = threading.Thread(target=push, args=("first",))
    thread.start()
    thread.join(30)
    fingerprint = LogService.objects.get(name="api").fingerprints.get()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{hq_server}/logs/fingerprints/{fingerprint.pk}/")
    expect(page.locator("body")).to_have_attribute("data-live", "open")
    detail = page.locator(f"#logs-fp-{fingerprint.pk}")
    expect(detail).to_contain_text("1 times")
    thread = threading.Thread(target=push, args=("second",))
    thread.start()
    thread.join(30)
    expect(detail).to_contain_text("2 times")
    assert errors == []
