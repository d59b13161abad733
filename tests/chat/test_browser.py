"""The chat page in Chromium against a live daphne: a message streams its answer token by token, the
tool shows in the timeline (expandable), the meters move, Stop shows its reason within a second, and a
reload shows the same timeline. Zero console errors."""

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from chat import services
from chat.models import ChatRun
from tests.chat.conftest import Background, wait_for
from tests.conftest import DaphneServer, screenshot, sign_in
from tests.fakes.openrouter import FakeOpenRouter, Reply, Tool

pytestmark = pytest.mark.browser


@pytest.fixture
def chat_server(django_db_setup, django_db_blocker, transactional_db) -> Iterator[tuple[str, FakeOpenRouter]]:
    """A daphne whose routing points at a fake OpenRouter; runs are executed by the test itself."""
    with FakeOpenRouter() as fake:
        env = {"OPENROUTER_BASE_URL": fake.url, "OPENROUTER_API_KEY": fake.api_key, "CHAT_RUNNER": "manual"}
        server = DaphneServer(env=env).start()
        try:
            yield server.url, fake
        finally:
            server.close()


def test_a_message_streams_shows_its_tool_and_stops_with_its_reason(
    page, chat_server, alice, seeded_policies, add_tool, fake_openrouter, settings
):
    url, fake = chat_server
    settings.OPENROUTER_BASE_URL, settings.OPENROUTER_API_KEY = fake.url, fake.api_key

    @add_tool
    def failing_services(window: str = "1h") -> dict:
        """Services with errors."""
        return {"services": ["api"], "window": window}

    fake.script(
        Reply(tools=[Tool("failing_services", '{"window": "24h"}', id="call_a")], finish_reason="tool_calls"),
        Reply(text="The api service is failing. " * 60, chunk_delay=0.05, fragment=4),
    )
    session = services.session_create(alice, mode="normal", title="Browser chat")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    sign_in(page, url)
    page.goto(f"{url}/chat/sessions/{session.pk}/")
    page.wait_for_selector("#live-indicator.live-open")
    page.fill("#chat-content", "What is failing?")
    page.click("#chat-send")
    page.wait_for_selector("#chat-stop")
    page.wait_for_selector("#live-indicator.live-open")
    run = ChatRun.objects.get(session=session)
    background = Background(run)
    # Tokens stream into the message while the answer is being written.
    stream = page.locator(f"#chat-stream-{run.pk}")
    expect(stream).to_contain_text("The api service", timeout=10000)
    first = len(stream.inner_text())
    wait_for(lambda: len(stream.inner_text()) > first + 20, "more tokens")
    # The tool is on the timeline and expands to its arguments and result.
    tool = page.locator("#chat-timeline details.chat-tool").first
    tool.locator("summary").click()
    expect(tool).to_contain_text("24h")
    expect(tool).to_contain_text("api")
    steps = page.locator('[data-meter="steps"] .meter-text').inner_text()
    assert steps.split(" ")[0] != "0"  # the step meter moved
    started = time.monotonic()
    page.click("#chat-stop")
    expect(page.locator("#chat-status")).to_contain_text("cancelled", timeout=5000)
    shown_after = time.monotonic() - started
    background.join()
    # The answer cut off by Stop stays in the conversation as far as it was shown, marked as such.
    expect(page.locator("#chat-messages")).to_contain_text("cut off: the run was stopped", timeout=5000)
    timeline = page.locator("#chat-timeline").inner_text()
    conversation = page.locator("#chat-messages").inner_text()
    assert "The api service is failing." in conversation
    page.reload()
    page.wait_for_selector("#live-indicator.live-open")
    assert page.locator("#chat-timeline").inner_text() == timeline
    assert page.locator("#chat-messages").inner_text() == conversation
    expect(page.locator("#chat-whyidle")).to_contain_text("Stopped by operator:alice")
    print(f"stop pressed -> reason shown: {shown_after:.2f} s")  # the figure is the bench's
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"chat-session-stopped-{width}")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (
            f"no sideways scroll at {width} px"
        )
    assert problems == []
