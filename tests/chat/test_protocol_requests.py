"""The protocol endpoints' refusals, and each stop's ending in both translations.

A stranger's session does not exist for them, bad requests get a 4xx in the one error shape and
change nothing; every stop reason ends an AG-UI run and a UI message stream the way a client must
read it (``max_iterations`` is not success)."""

import pytest

from chat import services
from chat.models import ChatRun, StopReason, ToolExecution
from chat.protocols import agui, aisdk
from chat.protocols.docs import agui_rows, aisdk_rows
from tests.chat.conftest import execute, send
from tests.chat.test_api import assert_error, call, rw, session, stranger  # noqa: F401
from tests.fakes.openrouter import Reply, Tool

pytestmark = pytest.mark.django_db

RUN_INPUT = {"runId": "r1", "messages": [{"id": "u1", "role": "user", "content": "What is failing?"}]}


def ui_input(session_id) -> dict:
    return {
        "id": str(session_id),
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}],
    }


@pytest.mark.parametrize("path", ["/agui", "/ui-stream"])
def test_it_answers_404_for_a_strangers_session_and_starts_nothing(client, session, stranger, path):  # noqa: F811
    body = {**RUN_INPUT, "threadId": str(session.pk)} if path == "/agui" else ui_input(session.pk)
    assert_error(call(client, "post", path, body, stranger), 404, "not_found")
    assert not ChatRun.objects.exists()


@pytest.mark.parametrize("thread", ["abc", "0", "99999999999999999999", "1/2"])
def test_it_answers_404_for_a_thread_that_is_no_session(client, rw, thread):  # noqa: F811
    assert_error(call(client, "post", "/agui", {**RUN_INPUT, "threadId": thread}, rw), 404, "not_found")


def test_it_needs_a_token_with_the_write_scope(client, session, bearer):  # noqa: F811
    body = {**RUN_INPUT, "threadId": str(session.pk)}
    assert_error(call(client, "post", "/agui", body), 401, "unauthorized")
    assert_error(call(client, "post", "/agui", body, bearer("read")), 403, "forbidden")
    assert not ChatRun.objects.exists()


def test_it_refuses_a_body_that_is_no_run_agent_input(client, rw, session):  # noqa: F811
    assert_error(call(client, "post", "/agui", {"threadId": str(session.pk)}, rw), 422, "validation_error")
    bad_resume = {
        **RUN_INPUT,
        "threadId": str(session.pk),
        "resume": [{"interruptId": "c1", "status": "maybe"}],
    }
    assert_error(call(client, "post", "/agui", bad_resume, rw), 422, "validation_error")


def test_it_needs_a_user_message_last_unless_it_resumes(client, rw, session):  # noqa: F811
    body = {"threadId": str(session.pk), "runId": "r1", "messages": [{"id": "a", "role": "assistant"}]}
    assert_error(call(client, "post", "/agui", body, rw), 422, "no_message")
    empty = {"id": str(session.pk), "messages": [{"id": "u", "role": "user", "parts": [{"type": "text"}, 7]}]}
    assert_error(call(client, "post", "/ui-stream", empty, rw), 422, "no_message")
    assert not ChatRun.objects.exists()


def test_it_refuses_a_resume_when_nothing_waits(client, rw, session):  # noqa: F811
    resume = [{"interruptId": "c1", "status": "resolved", "payload": {"approved": True}}]
    body = {**RUN_INPUT, "threadId": str(session.pk), "resume": resume}
    assert_error(call(client, "post", "/agui", body, rw), 409, "not_waiting")


@pytest.fixture
def waiting(chat, fake_openrouter):
    """A run of alice's committed session (the loop's watcher reads it) waiting for two approvals."""
    fake_openrouter.script(
        Reply(
            tools=[
                Tool("create_task", '{"title": "A", "kind": "echo"}', id="c1"),
                Tool("create_task", '{"title": "B", "kind": "echo"}', id="c2"),
            ],
            finish_reason="tool_calls",
        )
    )
    run = execute(send(chat))
    assert run.status == "waiting_approval"
    return run


def test_it_takes_all_the_answers_or_none(client, rw, chat, waiting):  # noqa: F811
    one = [{"interruptId": "c1", "status": "resolved", "payload": {"approved": True}}]
    body = {**RUN_INPUT, "threadId": str(chat.pk), "resume": one}
    error = assert_error(call(client, "post", "/agui", body, rw), 422, "bad_decisions")
    assert error["details"] == {"waiting": ["c1", "c2"], "answered": ["c1"]}
    shapeless = [*one, {"interruptId": "c2", "status": "resolved", "payload": "yes"}]
    assert_error(call(client, "post", "/agui", {**body, "resume": shapeless}, rw), 422, "bad_resume")
    parts = [
        {
            "type": "tool-create_task",
            "toolCallId": "c9",
            "state": "approval-responded",
            "approval": {"id": "c9", "approved": True},
        }
    ]
    answer = {"id": str(chat.pk), "messages": [{"id": "m", "role": "assistant", "parts": parts}]}
    assert_error(call(client, "post", "/ui-stream", answer, rw), 422, "bad_decisions")
    assert set(ToolExecution.objects.values_list("status", flat=True)) == {"waiting_approval"}


def test_it_denies_a_call_whose_interrupt_is_cancelled(chat, waiting, alice):
    decisions = agui.decisions_from_resume(
        [
            {"interruptId": "c1", "status": "cancelled"},
            {"interruptId": "c2", "status": "resolved", "payload": {"approved": True}},
        ]
    )
    run, before = services.session_decide(chat, decisions=decisions, user=alice)
    assert run.status == "queued" and before > 0
    statuses = dict(ToolExecution.objects.values_list("tool_call_id", "status"))
    assert statuses == {"c1": "denied", "c2": "approved"}


def _stop(reason: str) -> list[dict]:
    ts = "2026-12-08T02:00:00.123456Z"
    return [
        {"seq": 1, "ts": ts, "type": "run_started", "data": {"run_id": 7, "session_id": 3}},
        {"seq": 2, "ts": ts, "type": "token", "data": {"run_id": 7, "delta": "Hal", "iteration": 1}},
        {
            "seq": 3,
            "ts": ts,
            "type": "stop_reason",
            "data": {"run_id": 7, "reason": reason, "detail": "d", "action": "a"},
        },
    ]


@pytest.mark.parametrize("reason", list(StopReason))
def test_it_ends_each_stop_as_a_client_must_read_it(reason):
    events = agui.agui_events(_stop(reason), thread_id="3", run_id="r", state=agui.initial_state(7))
    assert [e["type"] for e in events[:2]] == ["RUN_STARTED", "STATE_SNAPSHOT"]
    assert all(e["timestamp"] == 1796695200123 for e in events)
    last = events[-1]
    if reason == "completed":
        assert last["type"] == "RUN_FINISHED" and last["outcome"] == {"type": "success"}
    elif reason == "cancelled":
        assert last["type"] == "RUN_FINISHED" and last["outcome"] == {"type": "cancelled"}
    else:
        assert last == {"type": "RUN_ERROR", "message": "d", "code": reason, "timestamp": 1796695200123}
    assert "TEXT_MESSAGE_END" in [e["type"] for e in events]
    chunks = aisdk.ui_stream_chunks(_stop(reason), run_id=7)
    assert chunks[0] == {"type": "start", "messageId": "chat-run-7"}
    finish = chunks[-1]
    assert finish == {"type": "finish", "finishReason": aisdk.FINISH_REASONS[reason]}
    assert (finish["finishReason"] == "stop") == (reason == "completed")


def test_it_patches_only_paths_its_snapshot_created():
    ts = "2026-12-08T02:00:00Z"
    finding = {
        "run_id": 7,
        "rule": "same_result",
        "action": "steer",
        "message": "m",
        "fingerprint": "f",
        "streak": 2,
    }
    envelopes = [
        {
            "seq": 1,
            "ts": ts,
            "type": "status",
            "data": {"run_id": 7, "phase": "routing", "status": "running"},
        },
        {"seq": 2, "ts": ts, "type": "guardrails", "data": finding},
        {"seq": 3, "ts": ts, "type": "budget", "data": {"run_id": 7, "steps": {"used": 1, "limit": 4}}},
    ]
    events = agui.agui_events(envelopes, thread_id="3", run_id="r", state=agui.initial_state(7))
    state = events[1]["snapshot"]
    for event in events[2:]:
        for op in event["delta"]:
            *parents, key = op["path"].split("/")[1:]
            target = state
            for part in parents:
                target = target[part]
            assert op["op"] == "add" or key in target, op["path"]
            target[key] = op["value"]
    assert state["guardrails"]["same_result"]["action"] == "steer" and state["budget"]["steps"]["used"] == 1


def test_it_documents_both_mappings_as_the_translators_make_them(alice_client):
    schema = alice_client.get("/api/openapi.json").json()
    described = schema["info"]["description"]
    for row in (*agui_rows(), *aisdk_rows()):
        assert row[0] in described
    assert '`{"type": "RUN_ERROR", "message": "<a sentence>", "code": "max_iterations"}`' in described
    assert '`{"type": "finish", "finishReason": "tool-calls"}`' in described
    for path in ("/api/chat/agui", "/api/chat/ui-stream"):
        assert "text/event-stream" in schema["paths"][path]["post"]["responses"]["200"]["content"]


def test_it_takes_the_signed_in_session_too_and_starts_the_run_with_the_last_message(alice_client, chat):
    """(Committed: the stream gives its database connection back before it follows the run.)"""
    history = [
        {"id": "u0", "role": "user", "content": "earlier"},
        {"id": "a0", "role": "assistant", "content": "an answer"},
        {
            "id": "u1",
            "role": "user",
            "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "failing?"}],
        },
    ]
    body = {"threadId": str(chat.pk), "runId": "r1", "messages": history}
    answer = call(alice_client, "post", "/agui", body)
    assert answer.status_code == 200 and answer["Content-Type"] == "text/event-stream"
    run = ChatRun.objects.get()
    assert run.status == "queued" and run.messages.get().content == "What is failing?"
    services.run_stop(run, user=chat.owner)
    answer = call(alice_client, "post", "/ui-stream", ui_input(chat.pk))
    assert answer.status_code == 200 and answer["x-vercel-ai-ui-message-stream"] == "v1"
    assert ChatRun.objects.latest("pk").messages.get().content == "Hi"
