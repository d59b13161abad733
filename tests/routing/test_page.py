"""The Routing & Costs page, its actions, and the Overview's routing line."""

from decimal import Decimal

import pytest

from juggernaut import hq
from routing import live, services
from routing.models import Budget, CatalogModel, Policy, RoutingState
from tests.fakes.openrouter import Reply

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "Summarise the incident."}]


def test_it_says_how_to_configure_a_key_when_there_is_none(alice_client, settings):
    settings.OPENROUTER_API_KEY = ""
    settings.OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
    response = alice_client.get("/routing/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No OpenRouter key: model calls are refused." in html
    assert "Set OPENROUTER_API_KEY in the environment" in html
    assert "Not synced yet: policies use the bundled price snapshot of 2025-06-01" in html
    assert "No budgets yet" in html and "No model calls yet" in html
    status = hq.AREAS["routing"].status()
    assert status.state == "warn" and status.text.startswith("No OpenRouter key")


def test_it_shows_calls_spend_meters_and_prices_per_1k(alice_client, openrouter, fake_openrouter):
    services.budget_set(
        scope="global", period="day", limit_usd=Decimal("0.001"), soft_limit_usd=Decimal("0.0008")
    )
    fake_openrouter.script(Reply(text="ok", cost=Decimal("0.00042"), model="openai/gpt-4o-mini"))
    services.completion_run("ops", MESSAGES, session="sess-7", client=openrouter)
    services.catalog_sync(client=openrouter)
    html = alice_client.get("/routing/").content.decode()
    assert 'id="routing-call-' in html and "$0.0004" in html and "openai/gpt-4o-mini" in html
    assert "Daily budget of all calls" in html and "$0.0004 spent of $0.0010" in html  # the meter
    assert 'data-pct="42.0"' in html
    assert "sess-7" in html  # most expensive sessions
    assert "$0.0025" in html and "$0.01" in html  # gpt-4o per 1k prompt / completion
    assert "no fixed price" in html  # openrouter/auto
    assert "sk-or-test" not in html  # the key never reaches the page
    status = live.routing_area_status()
    assert status.state == "ok" and status.text.startswith("Today $0.0004 of $0.0010 across 1 call")


def test_the_overview_line_names_a_crossed_soft_limit(openrouter, fake_openrouter):
    services.budget_set(
        scope="global", period="day", limit_usd=Decimal("1"), soft_limit_usd=Decimal("0.0001")
    )
    fake_openrouter.script(Reply(text="ok", cost=Decimal("0.0002")))
    services.completion_run("ops", MESSAGES, client=openrouter)
    status = live.routing_area_status()
    assert status.state == "warn"
    assert status.text == "Daily budget of all calls: $0.0002 spent of $1.00, past the soft limit of $0.0001."


def test_the_overview_line_says_when_a_budget_is_exhausted(openrouter, fake_openrouter):
    services.budget_set(scope="mode", mode="ops", period="month", limit_usd=Decimal("0.0002"))
    fake_openrouter.script(Reply(text="ok", cost=Decimal("0.0002")))
    Budget.objects.update(limit_usd=Decimal("1"))
    services.completion_run("ops", MESSAGES, client=openrouter)
    Budget.objects.update(limit_usd=Decimal("0.0002"))
    status = live.routing_area_status()
    assert status.state == "error" and "limit reached: calls are refused" in status.text


def test_a_refused_key_is_an_error_with_its_next_step(openrouter, fake_openrouter, settings):
    settings.OPENROUTER_API_KEY = "sk-or-revoked"
    services.key_check()
    status = live.routing_area_status()
    assert (
        status.state == "error"
        and "The key was refused" in status.text
        and "Check OPENROUTER_API_KEY" in status.text
    )


def test_a_good_key_shows_its_credit(openrouter, fake_openrouter):
    services.key_check(client=openrouter)
    assert live.key_state()["text"] == "Key set: $17.50 of $20.00 credit left; $2.50 used."
    assert RoutingState.load().key_remaining == Decimal("17.5")


def test_the_page_edits_a_policy_and_refuses_one_above_its_cap(alice_client):
    form = {
        "model": "openai/gpt-4o",
        "fallback_models": "",
        "max_price_per_1k": "0.001",
        "max_context_tokens": "16000",
        "max_iterations": "5",
        "max_output_tokens": "1024",
    }
    response = alice_client.post("/routing/policies/ops/", form, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "Refused: openai/gpt-4o costs $0.0025 per 1k prompt tokens" in response.content.decode()
    assert Policy.objects.get(mode="ops").model == "openai/gpt-4o-mini"
    form["max_price_per_1k"] = "0.02"
    response = alice_client.post("/routing/policies/ops/", form, HTTP_HX_REQUEST="true")
    assert (
        "Policy ops saved." in response.content.decode()
        and 'id="routing-meters"' in response.content.decode()
    )
    assert Policy.objects.get(mode="ops").model == "openai/gpt-4o"


@pytest.mark.parametrize("limit", ["abc", "-1", "NaN", "1e400", "5\x00"])
def test_the_budget_form_refuses_bad_amounts_without_a_500(alice_client, limit):
    response = alice_client.post(
        "/routing/budgets/", {"scope": "global", "period": "day", "limit_usd": limit}
    )
    assert response.status_code == 302 and not Budget.objects.exists()


def test_the_budget_form_sets_a_budget(admin_client):
    response = admin_client.post(
        "/routing/budgets/",
        {"scope": "mode", "mode": "code", "period": "month", "limit_usd": "$25", "soft_limit_usd": "20"},
        HTTP_HX_REQUEST="true",
    )
    assert "Monthly budget of mode code set to $25.00." in response.content.decode()
    assert Budget.objects.get().soft_limit_usd == Decimal("20")


def test_sync_button_fills_the_catalog(alice_client, fake_openrouter):
    response = alice_client.post("/routing/catalog/sync/", HTTP_HX_REQUEST="true")
    assert "Model catalog synced: 4 models." in response.content.decode()
    assert CatalogModel.objects.get(model_id="openrouter/auto").prompt_price is None
    assert RoutingState.load().key_remaining == Decimal("17.5")


def test_strangers_and_non_staff_cannot_see_or_act(client_factory=None):
    from django.test import Client

    assert Client().get("/routing/").status_code == 302
    assert Client().post("/routing/budgets/", {"scope": "global"}).status_code == 302
    assert not Budget.objects.exists()


def test_it_says_what_happens_without_any_policy(alice_client):
    Policy.objects.all().delete()
    html = alice_client.get("/routing/").content.decode()
    assert "No policies: every model call is refused with <code>unknown_mode</code>." in html
    assert 'href="/admin/routing/policy/add/"' in html
    with pytest.raises(services.RoutingError) as refused:
        services.policy_get("normal")
    assert refused.value.code == "unknown_mode"
