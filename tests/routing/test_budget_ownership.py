"""Whose budget is it: an operator sets and spends only their own session budgets; global and per-mode
budgets are an admin's. Driven as alice, a staff operator with a ``write`` token, attacking carol's
session budget and everyone's global budget; bob, who is no operator, gets nowhere at all."""

from decimal import Decimal

import pytest
from django.test import Client

from routing import services
from routing.models import Budget, CostTracking, Usage
from tests.conftest import PASSWORD
from tests.fakes.openrouter import Reply

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "Which deploy failed?"}]


def post(client, url: str, body: dict, headers: dict):
    return client.post(url, body, content_type="application/json", **headers)


@pytest.fixture
def carol(django_user_model):
    return django_user_model.objects.create_user("carol", "carol@example.com", PASSWORD, is_staff=True)


@pytest.fixture
def carols_chat_budget(carol) -> Budget:
    """The budget the chat gives carol's session ``chat-7`` when a run starts (see chat's _run_start)."""
    budget, _ = services.budget_set(scope="session", session="chat-7", period="total", limit_usd=Decimal("2"))
    return budget


def test_it_refuses_an_operators_write_token_setting_global_or_mode_budgets(client, bearer):
    writer = bearer("read", "write")
    for body in [
        {"scope": "global", "period": "day", "limit_usd": 0},
        {"scope": "mode", "mode": "ops", "period": "day", "limit_usd": 0},
    ]:
        response = post(client, "/api/routing/budgets", body, writer)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        assert "only an admin sets global and per-mode budgets" in response.json()["error"]["message"]
    assert not Budget.objects.exists()


def test_it_lets_an_admin_set_the_global_budget(admin_client):
    body = {"scope": "global", "period": "day", "limit_usd": 3}
    response = admin_client.post("/api/routing/budgets", body, content_type="application/json")
    assert response.status_code == 201 and Budget.objects.get(scope="global").limit_usd == 3


def test_it_refuses_the_global_budget_on_the_page_to_an_operator(alice_client, admin_client):
    form = {"scope": "global", "period": "day", "limit_usd": "0"}
    refused = alice_client.post("/routing/budgets/", form, HTTP_HX_REQUEST="true")
    assert "only an admin sets global and per-mode budgets" in refused.content.decode()
    assert not Budget.objects.exists()
    page = alice_client.get("/routing/").content.decode()
    assert 'value="global"' not in page and 'value="mode"' not in page
    assert 'value="global"' in admin_client.get("/routing/").content.decode()


def test_it_cannot_zero_another_operators_session_budget(client, bearer, carols_chat_budget):
    for name in ["chat-7", "carol/s1", "../chat-7"]:
        body = {"scope": "session", "session": name, "period": "total", "limit_usd": 0}
        response = post(client, "/api/routing/budgets", body, bearer("write"))
        assert response.status_code == 201
        assert response.json()["session"] == f"alice/{name}"  # a budget of alice's own session
    carols_chat_budget.refresh_from_db()
    assert carols_chat_budget.limit_usd == Decimal("2")


def test_it_cannot_spend_from_another_operators_session_budget(
    client, bearer, carols_chat_budget, fake_openrouter
):
    fake_openrouter.script(Reply(text="ok", cost=Decimal("0.5")))
    body = {"mode": "ops", "messages": MESSAGES, "session": "chat-7"}
    response = post(client, "/api/routing/complete", body, bearer("write"))
    assert response.status_code == 200
    assert Usage.objects.get().session == "alice/chat-7"
    # Nothing was charged to carol's session: her budget has its whole $2 left.
    assert not CostTracking.objects.filter(session="chat-7").exclude(cost_usd=0).exists()
    assert CostTracking.objects.get(period="total", session="alice/chat-7").cost_usd == Decimal("0.5")


def test_it_refuses_an_over_long_session_name_in_the_error_shape(client, bearer):
    body = {"scope": "session", "session": "s" * 100, "period": "day", "limit_usd": 1}
    response = post(client, "/api/routing/budgets", body, bearer("write"))
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "bad_session",
        "message": "a session name is 1 to 94 characters",
        "details": None,
    }


def test_it_gives_bob_nothing(bob):
    client = Client()
    client.force_login(bob)
    body = {"scope": "global", "period": "day", "limit_usd": 0}
    assert client.post("/api/routing/budgets", body, content_type="application/json").status_code == 401
    assert client.post("/routing/budgets/", {"scope": "global", "limit_usd": "0"}).status_code == 403
    assert not Budget.objects.exists()
