"""The Routing & Costs page in Chromium against a live daphne: a call made through the API appears live
with its cost and moves the budget meter, without a reload."""

from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests
from playwright.sync_api import expect

from routing import services
from tests.conftest import DaphneServer, sign_in
from tests.fakes.openrouter import FakeOpenRouter, Reply

pytestmark = pytest.mark.browser


@pytest.fixture
def routed_server(
    django_db_setup, django_db_blocker, transactional_db
) -> Iterator[tuple[str, FakeOpenRouter]]:
    """A daphne whose routing points at a fake OpenRouter in this process."""
    with FakeOpenRouter() as fake:
        server = DaphneServer(
            env={"OPENROUTER_BASE_URL": fake.url, "OPENROUTER_API_KEY": fake.api_key}
        ).start()
        try:
            yield server.url, fake
        finally:
            server.close()


def test_it_shows_an_api_call_live_with_its_cost_and_moves_the_meter(
    page, routed_server, alice, make_token, seeded_policies
):
    url, fake = routed_server
    budget, _ = services.budget_set(
        scope="global", period="day", limit_usd=Decimal("0.01"), soft_limit_usd=Decimal("0.008")
    )
    sign_in(page, url)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url + "/routing/")
    meter = page.locator(f"#routing-budget-{budget.pk}")
    expect(meter).to_have_attribute("data-pct", "0.0")
    expect(page.locator("#routing-calls")).to_contain_text("No model calls yet")
    expect(page.locator("body")).to_have_attribute("data-live", "open")

    fake.script(
        Reply(
            text="Deploy 42 failed on a missing env var.", cost=Decimal("0.0045"), model="openai/gpt-4o-mini"
        )
    )
    answer = requests.post(
        url + "/api/routing/complete",
        json={
            "mode": "ops",
            "messages": [{"role": "user", "content": "Why did deploy 42 fail?"}],
            "session": "s-live",
        },
        headers={"Authorization": f"Bearer {make_token('write')}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    usage_id = answer.json()["usage_id"]

    row = page.locator(f"#routing-call-{usage_id}")
    expect(row).to_contain_text("$0.0045")
    expect(row).to_contain_text("openai/gpt-4o-mini")
    expect(meter).to_have_attribute("data-pct", "45.0")
    expect(meter).to_contain_text("$0.0045 spent of $0.01")
    expect(page.locator("#routing-today")).to_contain_text("$0.0045")
    expect(page.locator("#routing-sessions")).to_contain_text("s-live")
    assert errors == []
