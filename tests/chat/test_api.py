"""The chat API: each endpoint as a client drives it, ownership (a stranger gets 404), scopes, bad input."""

import json

import pytest

from chat import runs, services
from chat.models import ChatRun, ChatSession, StopReason, ToolExecution
from tests.chat.conftest import events, execute, send
from tests.fakes.openrouter import Reply, Tool

pytestmark = pytest.mark.django_db


def call(client, method: str, path: str, body=None, headers=None):
    if method == "get":
        return client.get(f"/api/chat{path}", **(headers or {}))
    data = body if isinstance(body, str) else json.dumps(body if body is not None else {})
    return getattr(client, method)(
        f"/api/chat{path}", data=data, content_type="application/json", **(headers or {})
    )


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code:
        assert error["code"] == code
    return error


@pytest.fixture
def rw(bearer):
    return bearer("read", "write")


@pytest.fixture
def stranger(make_token, carol):
    return {"HTTP_AUTHORIZATION": f"Bearer {make_token('read', 'write', user=carol)}"}


@pytest.fixture
def session(alice):
    return services.session_create(alice, mode="normal", title="Ops")


def test_it_creates_a_session_in_a_mode_with_its_limits(client, rw, alice):
    answer = call(
        client,
        "post",
        "/sessions",
        {"mode": "ops", "title": " Night  shift ", "limits": {"max_steps": 7}},
        rw,
    )
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["mode"], body["title"], body["status"], body["messages"], body["active_run_id"]) == (
        "ops",
        "Night shift",
        "idle",
        [],
        None,
    )
    session = ChatSession.objects.get(pk=body["id"])
    assert session.owner == alice and session.budgets.get(run=None).max_steps == 7


def test_it_refuses_an_unknown_mode_and_bad_input(client, rw):
    assert (
        "no policy for mode 'nope'"
        in assert_error(call(client, "post", "/sessions", {"mode": "nope"}, rw), 422, "unknown_mode")[
            "message"
        ]
    )
    assert_error(call(client, "post", "/sessions", {"title": "no mode"}, rw), 422, "validation_error")
    assert_error(call(client, "post", "/sessions", {"mode": "ops", "limits": {"max_steps": 0}}, rw), 422)
    assert_error(call(client, "post", "/sessions", "{not json", rw), 422)
    assert not ChatSession.objects.exists()


def test_it_lists_only_the_callers_sessions(client, rw, stranger, session, carol):
    services.session_create(carol, mode="ops", title="Carol's")
    answer = call(client, "get", "/sessions", headers=rw)
    assert [s["title"] for s in answer.json()] == ["Ops"]
    assert [s["title"] for s in call(client, "get", "/sessions", headers=stranger).json()] == ["Carol's"]


def test_it_shows_a_session_with_its_messages_to_its_owner_only(client, rw, stranger, session):
    send(session, "Hello")
    body = call(client, "get", f"/sessions/{session.pk}", headers=rw).json()
    assert [(m["role"], m["content"]) for m in body["messages"]] == [("user", "Hello")]
    assert body["active_run_id"] == body["runs"][0]
    assert_error(call(client, "get", f"/sessions/{session.pk}", headers=stranger), 404, "not_found")
    assert_error(call(client, "get", "/sessions/999999", headers=rw), 404)
    assert_error(call(client, "get", f"/sessions/{2**70}", headers=rw), 422)


def test_it_starts_a_run_for_a_message_and_refuses_a_second_while_it_is_active(client, rw, session):
    answer = call(client, "post", f"/sessions/{session.pk}/messages", {"content": "What is failing?"}, rw)
    assert answer.status_code == 202, answer.content
    run = ChatRun.objects.get(pk=answer.json()["run_id"])
    assert (run.session, run.status, run.budget.max_iterations) == (session, "queued", 10)
    busy = assert_error(
        call(client, "post", f"/sessions/{session.pk}/messages", {"content": "Hello?"}, rw), 409, "run_active"
    )
    assert busy["details"] == {"run_id": run.pk} and "Stop it or wait" in busy["message"]
    assert_error(call(client, "post", f"/sessions/{session.pk}/messages", {"content": ""}, rw), 422)
    assert_error(
        call(client, "post", f"/sessions/{session.pk}/messages", {"content": "   "}, rw), 422, "empty_message"
    )
    assert session.messages.count() == 1


def test_it_refuses_a_stranger_and_a_read_only_token_a_message(client, bearer, stranger, session):
    assert_error(call(client, "post", f"/sessions/{session.pk}/messages", {"content": "hi"}, stranger), 404)
    assert_error(
        call(client, "post", f"/sessions/{session.pk}/messages", {"content": "hi"}, bearer("read")), 403
    )
    assert not ChatRun.objects.exists()


def test_it_sets_a_sessions_limits(client, rw, stranger, session):
    answer = call(
        client, "put", f"/sessions/{session.pk}/limits", {"max_iterations": 3, "max_cost_usd": "0.05"}, rw
    )
    assert answer.status_code == 200, answer.content
    override = session.budgets.get(run=None)
    assert (override.max_iterations, str(override.max_cost_usd)) == (3, "0.050000")
    assert_error(call(client, "put", f"/sessions/{session.pk}/limits", {"max_iterations": 3}, stranger), 404)


def test_it_switches_a_sessions_mode(client, rw, stranger, session):
    answer = call(client, "put", f"/sessions/{session.pk}/mode", {"mode": "ops"}, rw)
    assert answer.status_code == 200 and answer.json()["mode"] == "ops", answer.content
    assert_error(call(client, "put", f"/sessions/{session.pk}/mode", {"mode": "nope"}, rw), 422)
    assert_error(call(client, "put", f"/sessions/{session.pk}/mode", {"mode": "normal"}, stranger), 404)
    session.refresh_from_db()
    assert session.mode == "ops"


@pytest.mark.django_db(transaction=True)
def test_it_shows_a_runs_whole_state(client, rw, stranger, chat, fake_openrouter, add_tool):
    def uptime() -> str:
        """Uptime."""
        return "3 days"

    add_tool(uptime)
    fake_openrouter.script(
        Reply(tools=[Tool("uptime", "{}", id="c1")], finish_reason="tool_calls"), Reply(text="Up 3 days.")
    )
    run = execute(send(chat))
    body = call(client, "get", f"/runs/{run.pk}", headers=rw).json()
    assert (body["status"], body["stop_reason"], body["session_id"], body["topic"]) == (
        "stopped",
        "completed",
        chat.pk,
        f"chat.run.{run.pk}",
    )
    assert body["counters"] == {
        "iterations": 2,
        "tool_calls": 1,
        "tool_errors": 0,
        "model_retries": 0,
        "guardrail_steers": 0,
        "guardrail_blocks": 0,
    }
    assert body["budget"]["steps"] == {"used": 3, "limit": 40}
    [execution] = body["tool_executions"]
    assert (execution["tool_call_id"], execution["status"], execution["result"]) == ("c1", "ok", "3 days")
    assert body["last_seq"] == len(events(run))
    assert_error(call(client, "get", f"/runs/{run.pk}", headers=stranger), 404)


def test_it_stops_a_run(client, rw, stranger, session):
    run = send(session)
    assert_error(call(client, "post", f"/runs/{run.pk}/stop", headers=stranger), 404)
    body = call(client, "post", f"/runs/{run.pk}/stop", headers=rw).json()
    assert (body["status"], body["stop_reason"]) == ("stopped", "cancelled")
    # Stopping a stopped run changes nothing and says how it stopped.
    again = call(client, "post", f"/runs/{run.pk}/stop", headers=rw)
    assert again.status_code == 200 and again.json()["stop_reason"] == "cancelled"


@pytest.mark.django_db(transaction=True)
def test_it_approves_and_refuses_bad_approvals(client, rw, stranger, chat, fake_openrouter):
    fake_openrouter.script(
        Reply(tools=[Tool("retry_task", '{"task_id": 99}', id="c1")], finish_reason="tool_calls"),
    )
    run = send(chat)
    assert_error(
        call(client, "post", f"/runs/{run.pk}/approve", {"tool_call_id": "c1", "approve": True}, rw),
        409,
        "not_waiting",
    )
    execute(run)
    assert_error(
        call(client, "post", f"/runs/{run.pk}/approve", {"tool_call_id": "c1", "approve": True}, stranger),
        404,
    )
    assert_error(
        call(client, "post", f"/runs/{run.pk}/approve", {"tool_call_id": "nope", "approve": True}, rw), 404
    )
    assert_error(call(client, "post", f"/runs/{run.pk}/approve", {"tool_call_id": "c1"}, rw), 422)
    answer = call(client, "post", f"/runs/{run.pk}/approve", {"tool_call_id": "c1", "approve": False}, rw)
    assert answer.status_code == 200 and answer.json()["status"] == "denied"
    assert ToolExecution.objects.get().decided_by == "operator:alice (token test)"
    assert ChatRun.objects.get(pk=run.pk).status == "queued"


def test_it_resumes_the_latest_interrupted_run(client, rw, stranger, session):
    run = send(session)
    runs.run_close(run.pk, reason=StopReason.INTERRUPTED, detail="its process died")
    assert_error(call(client, "post", f"/runs/{run.pk}/resume", headers=stranger), 404)
    answer = call(client, "post", f"/runs/{run.pk}/resume", headers=rw)
    assert answer.status_code == 202
    resumed = ChatRun.objects.get(pk=answer.json()["run_id"])
    assert resumed.resumed_from == run and resumed.status == "queued"
    assert_error(call(client, "post", f"/runs/{run.pk}/resume", headers=rw), 409, "run_active")


@pytest.mark.parametrize(
    "reason", [StopReason.COMPLETED, StopReason.CANCELLED, StopReason.MODEL_ERROR, StopReason.MAX_ITERATIONS]
)
def test_it_refuses_to_resume_a_run_that_ended_on_purpose_and_says_what_to_do(client, rw, session, reason):
    run = send(session)
    runs.run_close(run.pk, reason=reason, detail="ended")
    answer = call(client, "post", f"/runs/{run.pk}/resume", headers=rw)
    error = assert_error(answer, 409, "not_resumable")
    assert runs.ACTIONS[reason] in error["message"] and error["details"] == {"stop_reason": reason}
    assert ChatRun.objects.filter(session=session).count() == 1  # no new run started
