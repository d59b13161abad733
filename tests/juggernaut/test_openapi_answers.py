"""Real answers of every area, each checked against what the OpenAPI document declares for its
operation and status (JSON Schema 2020-12, the document's own dialect): successes, refusals in the
one error shape, and a chat run's events, each of them matching its typed variant."""

import json

import jsonschema_rs
import pytest
from django.test import Client

from chat.models import ChatRun
from juggernaut.api import api
from logscrawler.models import LogService
from tests.chat.conftest import (  # noqa: F401 (fixtures)
    add_tool,
    chat,
    chat_settings,
    execute,
    fake_openrouter,
    openrouter,
    seeded_policies,
    send,
)
from tests.fakes.openrouter import Reply, Tool

DOCUMENT = api.get_openapi_schema(path_prefix="/api/")
RUN_EVENT_TYPES = {"run_started", "status", "token", "tool_start", "tool_result", "budget", "stop_reason"}


def validator(schema: dict):
    return jsonschema_rs.validator_for({**schema, "components": DOCUMENT["components"]})


class Answers:
    """A client with a token that checks every answer against the document; counts what it checked."""

    def __init__(self, token: str) -> None:
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        self.checked: list[tuple[str, str, int]] = []

    def call(self, method: str, template: str, path: str | None = None, body=None, **kw):
        send_ = getattr(self.client, method)
        if body is not None:
            kw.setdefault("content_type", "application/json")
            kw["data"] = json.dumps(body) if kw["content_type"] == "application/json" else body
        response = send_(path or template, **kw)
        operation = DOCUMENT["paths"][template][method]
        declared = operation["responses"].get(str(response.status_code))
        assert declared, (
            f"{method.upper()} {template} answered {response.status_code}, which it does not declare"
        )
        media = response["Content-Type"].split(";")[0]
        schema = declared["content"][media]["schema"]
        errors = [e.message for e in validator(schema).iter_errors(response.json())]
        assert not errors, (method, template, response.status_code, errors[:3])
        self.checked.append((method, template, response.status_code))
        return response


@pytest.fixture
def answers(make_token, admin_user) -> Answers:
    """An admin's (a superuser's) token: global budgets are an admin's."""
    return Answers(make_token("admin", user=admin_user))


@pytest.mark.usefixtures("transactional_db", "seeded_policies", "fake_openrouter")
def test_it_answers_every_area_as_its_schema_says(answers):
    a = answers
    a.call("get", "/api/health")
    a.call("get", "/api/tokens")
    a.call("post", "/api/tokens", body={"name": "ci", "scopes": ["read"]})
    # engine
    task = a.call("post", "/api/engine/tasks", body={"title": "t", "kind": "echo"}).json()
    a.call("get", "/api/engine/tasks")
    a.call("get", "/api/engine/tasks/{task_id}", f"/api/engine/tasks/{task['id']}")
    a.call("post", "/api/engine/tasks/{task_id}/approve", f"/api/engine/tasks/{task['id']}/approve")  # 409
    a.call("get", "/api/engine/status")
    a.call("post", "/api/engine/workers", body={"name": "w1", "capabilities": ["python"]})
    a.call("get", "/api/events/{topic}", "/api/events/engine")
    # chat
    session = a.call("post", "/api/chat/sessions", body={"mode": "normal"}).json()
    a.call("get", "/api/chat/sessions")
    a.call("get", "/api/chat/sessions/{session_id}", f"/api/chat/sessions/{session['id']}")
    a.call("get", "/api/chat/runs/{run_id}", "/api/chat/runs/999999")  # 404
    a.call("post", "/api/chat/sessions", body={"mode": ""})  # 422
    # logs
    LogService.objects.create(name="api")
    line = json.dumps({"service": "api", "timestamp": "2026-01-01T00:00:00Z", "message": "Timeout after 30s"})
    a.call("post", "/api/logs/ingest", body=f"{line}\n{{}}\n", content_type="application/x-ndjson")
    a.call("get", "/api/logs/top-errors", "/api/logs/top-errors?window=24h")
    a.call("get", "/api/logs/alerts")
    # routing: a budget of nothing refuses the completion with 402
    a.call("get", "/api/routing/policies")
    a.call("get", "/api/routing/models")
    a.call("post", "/api/routing/budgets", body={"scope": "global", "period": "day", "limit_usd": 0})
    a.call("get", "/api/routing/budgets")
    refused = a.call(
        "post", "/api/routing/complete", body={"mode": "ops", "messages": [{"role": "user", "content": "hi"}]}
    )
    # self-heal
    a.call("get", "/api/self-heal/executions")
    a.call("get", "/api/self-heal/executions/{execution_id}", "/api/self-heal/executions/999")  # 404
    # code health
    repo = a.call("post", "/api/codehealth/repositories", body={"github": "octo/widgets"}).json()
    a.call("get", "/api/codehealth/repositories")
    a.call(
        "get",
        "/api/codehealth/repositories/{repository_id}/findings",
        f"/api/codehealth/repositories/{repo['id']}/findings",
    )

    assert refused.status_code == 402 and refused.json()["error"]["code"] == "budget_exceeded"
    codes = {status for _, _, status in a.checked}
    assert {200, 201, 402, 404, 409, 422} <= codes
    areas = {template.split("/")[2] for _, template, _ in a.checked}
    assert areas == {
        "health",
        "tokens",
        "engine",
        "events",
        "chat",
        "logs",
        "routing",
        "self-heal",
        "codehealth",
    }
    print(f"OpenAPI answers: {len(a.checked)} live answers of {len(areas)} areas validated, 0 failures")


def test_it_types_every_event_of_a_chat_run(make_token, chat, add_tool, fake_openrouter):  # noqa: F811
    @add_tool
    def failing_services(window: str = "1h") -> dict:
        """Services with errors."""
        return {"services": ["api"], "window": window}

    fake_openrouter.script(
        Reply(tools=[Tool("failing_services", '{"window": "24h"}', id="call_a")], finish_reason="tool_calls"),
        Reply(text="The api service is failing."),
    )
    run = execute(send(chat))
    assert ChatRun.objects.get(pk=run.pk).stop_reason == "completed"

    owner = Answers(make_token("read"))  # the session's owner: a run's topic is hers alone
    page = owner.call("get", "/api/events/{topic}", f"/api/events/{run.topic}").json()
    components = DOCUMENT["components"]["schemas"]
    for event in page["events"]:
        variant = "ChatRun" + "".join(p.capitalize() for p in event["type"].split("_")) + "Event"
        errors = [
            e.message for e in validator({"$ref": f"#/components/schemas/{variant}"}).iter_errors(event)
        ]
        assert variant in components and not errors, (event["type"], errors[:3])
        assert validator(components["OtherTopicEvent"]).is_valid(event) is False  # the union is exclusive
    assert {e["type"] for e in page["events"]} == RUN_EVENT_TYPES
    print(f"OpenAPI answers: {len(page['events'])} chat run events validated against their variants")


def test_it_declares_streams_bodies_security_and_refusals_where_they_happen():
    paths = DOCUMENT["paths"]
    stream = paths["/api/events/{topic}/stream"]["get"]
    assert list(stream["responses"]["200"]["content"]) == ["text/event-stream"]
    assert {"name": "Last-Event-ID", "in": "header"}.items() <= next(
        p for p in stream["parameters"] if p["name"] == "Last-Event-ID"
    ).items()
    ingest = paths["/api/logs/ingest"]["post"]
    line = ingest["requestBody"]["content"]["application/x-ndjson"]["schema"]
    assert {"service", "timestamp", "message"} <= set(line["required"]) and "413" in ingest["responses"]
    complete = paths["/api/routing/complete"]["post"]["responses"]
    assert {"402", "409", "413", "422", "502", "503"} <= set(complete)
    assert "429" in paths["/api/self-heal/auto-heal"]["post"]["responses"]
    assert {"429", "502"} <= set(
        paths["/api/codehealth/repositories/{repository_id}/pull-requests"]["post"]["responses"]
    )
    assert "402" not in paths["/api/chat/sessions"]["get"]["responses"]  # refusals only where they happen
    for path, operations in paths.items():
        for op in operations.values():
            if path == "/api/health":
                continue  # its 503 is its own answer: the database's state
            assert op["responses"]["503"]["content"]["application/json"]["schema"]["$ref"].endswith(
                "/ErrorOut"
            )
    assert paths["/api/health"]["get"]["security"] == [] and DOCUMENT["security"]
    assert DOCUMENT["servers"] and DOCUMENT["info"]["license"]["name"]
    schemas = DOCUMENT["components"]["schemas"]
    assert "TaskFilter" not in schemas  # ninja's query schemas, inlined as parameters: nothing refers to them
    assert schemas["RunOut"]["properties"]["stop_reason"]["enum"][:2] == ["", "completed"]
    assert "default" not in schemas["TaskIn"]["properties"]["priority"]  # an input default leaves it optional
    assert "priority" not in schemas["TaskIn"]["required"]
