"""The routing JSON API: scopes, listings, budgets, and routed completions with their refusals."""

from decimal import Decimal

import pytest

from routing.models import Budget, Usage
from tests.fakes.openrouter import Fail, Reply, Tool

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "Which deploy failed?"}]


def post(client, url, body, headers):
    return client.post(url, body, content_type="application/json", **headers)


@pytest.fixture
def admin(make_token, admin_user) -> dict:
    """The headers of an admin's token: global and per-mode budgets are an admin's."""
    return {"HTTP_AUTHORIZATION": f"Bearer {make_token('admin', user=admin_user)}"}


def test_reads_need_the_read_scope_and_writes_the_write_scope(client, bearer):
    assert client.get("/api/routing/policies").status_code == 401
    assert client.get("/api/routing/policies", **bearer("worker")).json()["error"]["code"] == "forbidden"
    reader = bearer("read")
    for url in ("/api/routing/policies", "/api/routing/models", "/api/routing/usage", "/api/routing/budgets"):
        assert client.get(url, **reader).status_code == 200, url
    response = post(
        client, "/api/routing/budgets", {"scope": "global", "period": "day", "limit_usd": 5}, reader
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    response = post(client, "/api/routing/complete", {"mode": "ops", "messages": MESSAGES}, reader)
    assert response.status_code == 403 and not Budget.objects.exists()


def test_policies_and_models_list_the_seeded_policies_and_snapshot(client, bearer):
    policies = {p["mode"]: p for p in client.get("/api/routing/policies", **bearer("read")).json()}
    assert policies["code"]["max_price_per_1k"] == 0.03 and policies["code"]["problems"] == []
    assert policies["normal"]["model"] == "openrouter/auto"
    models = {m["id"]: m for m in client.get("/api/routing/models", **bearer("read")).json()}
    assert (
        models["openai/gpt-4o"]["prompt_per_1k"] == 0.0025 and models["openai/gpt-4o"]["source"] == "snapshot"
    )
    assert models["openrouter/auto"]["prompt_price"] is None


def test_budgets_are_created_then_updated_and_listed_with_their_spend(client, admin):
    writer = admin
    body = {"scope": "mode", "mode": "code", "period": "month", "limit_usd": 25, "soft_limit_usd": 20}
    created = post(client, "/api/routing/budgets", body, writer)
    assert (
        created.status_code == 201 and created.json()["limit_usd"] == 25 and created.json()["state"] == "ok"
    )
    updated = post(client, "/api/routing/budgets", {**body, "limit_usd": 30}, writer)
    assert updated.status_code == 200 and updated.json()["id"] == created.json()["id"]
    listed = client.get("/api/routing/budgets", **writer).json()
    assert [(b["mode"], b["limit_usd"], b["spent_usd"]) for b in listed] == [("code", 30.0, 0.0)]


@pytest.mark.parametrize(
    "body",
    [
        {"scope": "planet", "period": "day", "limit_usd": 5},
        {"scope": "global", "period": "week", "limit_usd": 5},
        {"scope": "global", "period": "day", "limit_usd": -1},
        {"scope": "global", "period": "day", "limit_usd": 5, "soft_limit_usd": 6},
        {"scope": "mode", "mode": "unknown", "period": "day", "limit_usd": 5},
        {"scope": "session", "period": "day", "limit_usd": 5},
    ],
)
def test_bad_budgets_are_refused_in_the_error_shape(client, admin, body):
    response = post(client, "/api/routing/budgets", body, admin)
    assert response.status_code in (404, 422)
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert not Budget.objects.exists()


def test_complete_routes_records_and_answers_with_usage(client, bearer, fake_openrouter):
    fake_openrouter.script(
        Reply(text="Deploy 42 failed.", cost=Decimal("0.0003"), prompt_tokens=21, completion_tokens=6)
    )
    response = post(
        client,
        "/api/routing/complete",
        {"mode": "ops", "messages": MESSAGES, "session": "s1"},
        bearer("write"),
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["content"] == "Deploy 42 failed." and answer["model"] == "openai/gpt-4o-mini"
    assert answer["finish_reason"] == "stop" and answer["tool_calls"] == []
    assert answer["usage"] == {"prompt_tokens": 21, "completion_tokens": 6, "cost_usd": 0.0003}
    usage = client.get("/api/routing/usage", **bearer("read")).json()
    assert (
        usage[0]["id"] == answer["usage_id"]
        and usage[0]["cost_usd"] == 0.0003
        and usage[0]["session"] == "alice/s1"  # the caller's own session
    )


def test_complete_returns_tool_calls(client, bearer, fake_openrouter):
    fake_openrouter.script(
        Reply(tools=[Tool("restart", '{"service": "api"}', id="call_1")], finish_reason=None)
    )
    tools = [{"type": "function", "function": {"name": "restart", "parameters": {"type": "object"}}}]
    body = {"mode": "code", "messages": MESSAGES, "tools": tools, "tool_choice": "auto"}
    answer = post(client, "/api/routing/complete", body, bearer("write")).json()
    assert answer["finish_reason"] == "tool_calls"
    assert answer["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "restart", "arguments": '{"service": "api"}'},
        }
    ]
    sent = fake_openrouter.chat_bodies()[-1]
    assert sent["tools"] == tools and sent["tool_choice"] == "auto" and sent["models"][0] == "openai/gpt-4o"


def test_usage_is_newest_first(client, bearer, fake_openrouter):
    for _ in range(3):
        post(client, "/api/routing/complete", {"mode": "ops", "messages": MESSAGES}, bearer("write"))
    ids = [u["id"] for u in client.get("/api/routing/usage?limit=2", **bearer("read")).json()]
    assert ids == sorted(Usage.objects.values_list("id", flat=True), reverse=True)[:2]
    assert client.get("/api/routing/usage?limit=0", **bearer("read")).status_code == 422


def test_complete_refuses_with_budget_exceeded(client, bearer, admin, fake_openrouter):
    post(client, "/api/routing/budgets", {"scope": "global", "period": "day", "limit_usd": 0}, admin)
    response = post(client, "/api/routing/complete", {"mode": "ops", "messages": MESSAGES}, bearer("write"))
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "budget_exceeded" and "daily budget of all calls" in error["message"]
    assert fake_openrouter.chat_bodies() == []


def test_complete_refuses_with_no_model_fits(client, bearer, fake_openrouter):
    huge = [{"role": "user", "content": "word " * 20000}]
    response = post(client, "/api/routing/complete", {"mode": "ops", "messages": huge}, bearer("write"))
    assert response.status_code == 422 and response.json()["error"]["code"] == "no_model_fits"


def test_complete_reports_model_errors_with_retry_advice(client, bearer, fake_openrouter, settings):
    settings.HTTP_MAX_RETRIES = 0  # the retries themselves are the client's tests
    fake_openrouter.script(Fail(503, "No providers available", retry_after="2"))
    response = post(client, "/api/routing/complete", {"mode": "ops", "messages": MESSAGES}, bearer("write"))
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "model_error" and "No providers available" in error["message"]
    assert error["details"]["retryable"] is True and error["details"]["retry_after"] == 2.0
    assert Usage.objects.get().error_code == "503"


def test_complete_records_a_stream_that_broke_off_as_an_error(client, bearer, fake_openrouter, settings):
    settings.OPENROUTER_IDLE_TIMEOUT_SECONDS = 0.4
    fake_openrouter.script(Reply(text="Deploy 42 failed because", fragment=4, silent_after=3, silence=1.0))
    response = post(client, "/api/routing/complete", {"mode": "ops", "messages": MESSAGES}, bearer("write"))
    assert response.status_code == 502 and response.json()["error"]["details"]["retryable"] is True
    usage = Usage.objects.get()
    assert (usage.finish_reason, usage.error_code) == ("error", "timeout")
    assert usage.model_used == "openai/gpt-4o-mini"  # from the chunks that came before the silence


def test_complete_without_a_key_says_how_to_configure_one(client, bearer, settings):
    settings.OPENROUTER_API_KEY = ""
    settings.OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
    response = post(client, "/api/routing/complete", {"mode": "ops", "messages": MESSAGES}, bearer("write"))
    assert response.status_code == 503 and "OPENROUTER_API_KEY" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "ops", "messages": []},
        {"mode": "ops", "messages": [{"role": "robot", "content": "hi"}]},
        {"mode": "ops", "messages": MESSAGES, "max_tokens": 0},
        {"messages": MESSAGES},
    ],
)
def test_complete_validates_its_input(client, bearer, body, fake_openrouter):
    response = post(client, "/api/routing/complete", body, bearer("write"))
    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"
    assert fake_openrouter.chat_bodies() == []
