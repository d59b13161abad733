"""The chat's runs through the frontend protocols, as a Next.js frontend meets them: real runs on the
fake model, streamed by a live daphne, read by the protocols' own unchanged clients (AG-UI's
``HttpAgent``; the AI SDK's ``DefaultChatTransport`` + ``readUIMessageStream``), and every event of
every stream checked by the libraries' own schemas (tests/clients/validate.mjs)."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chat import services
from chat.models import ChatRun
from juggernaut.models import ApiToken
from tests.chat.conftest import Background, wait_for
from tests.conftest import DaphneServer
from tests.fakes.openrouter import Reply, Tool

pytestmark = pytest.mark.process

CLIENTS = Path(__file__).resolve().parent.parent / "clients"


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker) -> Iterator[str]:
    """A daphne serving the test database; the runs it starts are executed by each test (as a runner
    process would), on the fake model the test scripts."""
    if not (CLIENTS / "node_modules").is_dir():
        pytest.fail(
            "the protocol clients are not installed: npm ci --prefix tests/clients (make test does it)"
        )
    server = DaphneServer(env={"CHAT_RUNNER": "manual"}).start()
    try:
        yield server.url
    finally:
        server.close()


def node(script: str, config: dict) -> subprocess.Popen:
    return subprocess.Popen(
        ["node", str(CLIENTS / script), json.dumps(config)],
        cwd=CLIENTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out)


def execute_next(session) -> ChatRun:
    """Wait for the client's request to queue a run of the session (or its answers to queue it
    again), then execute it."""
    run = wait_for(
        lambda: ChatRun.objects.filter(session=session, status="queued").first(), "the request to queue a run"
    )
    return Background(run).join()


def assert_valid(streams: list[dict], protocol: str) -> None:
    for stream in streams:
        assert stream["status"] == 200
        assert stream["failures"] == [], stream["failures"]
        assert stream["events"] > 0
    print(f"{protocol}: {sum(s['events'] for s in streams)} live events validated, 0 failures")


@pytest.fixture
def session(transactional_db, alice, seeded_policies, fake_openrouter):
    return services.session_create(alice, mode="normal", title="Protocols")


@pytest.fixture
def token(make_token) -> str:
    return make_token("read", "write")


def _tool_script(fake, add_tool) -> None:
    @add_tool
    def failing_services(window: str = "1h") -> dict:
        """Services with errors."""
        return {"services": ["api"], "window": window}

    fake.script(
        Reply(tools=[Tool("failing_services", '{"window": "24h"}', id="call_a")], finish_reason="tool_calls"),
        Reply(text="The api service is failing."),
    )


def _approval_script(fake) -> None:
    fake.script(
        Reply(
            tools=[Tool("create_task", '{"title": "Check the api", "kind": "echo"}', id="call_t")],
            finish_reason="tool_calls",
        ),
        Reply(text="Queued it."),
    )


# --- AG-UI ----------------------------------------------------------------------------------------


def agui(live: str, token: str, session, **extra) -> subprocess.Popen:
    config = {"url": f"{live}/api/chat/agui", "token": token, "threadId": str(session.pk), **extra}
    return node("agui-run.mjs", {"message": "What is failing?", **config})


def test_it_streams_a_run_with_a_tool_call_that_httpagent_assembles(
    live, session, token, fake_openrouter, add_tool
):
    _tool_script(fake_openrouter, add_tool)
    proc = agui(live, token, session)
    run = execute_next(session)
    out = finish(proc)
    assert_valid(out["streams"], "agui")
    assert out["runs"][0]["error"] is None
    assert out["runs"][0]["outcome"] == {"type": "success"}
    assert out["runs"][0]["result"]["reason"] == "completed"
    user, call, result, answer = out["messages"]
    assert user["role"] == "user"
    assert call["role"] == "assistant"
    [tool_call] = call["toolCalls"]
    assert tool_call["id"] == "call_a" and tool_call["function"]["name"] == "failing_services"
    assert json.loads(tool_call["function"]["arguments"]) == {"window": "24h"}
    assert (result["role"], result["toolCallId"]) == ("tool", "call_a")
    assert json.loads(result["content"]) == {"services": ["api"], "window": "24h"}
    assert (answer["role"], answer["content"]) == ("assistant", "The api service is failing.")
    # The state the snapshot and every delta built: the run's own status, budget and stop.
    state = out["state"]
    assert state["run_id"] == run.pk and state["stop"]["reason"] == "completed"
    assert state["status"]["phase"] == "streaming"
    assert state["budget"]["iterations"] == {"used": 2, "limit": run.budget.max_iterations}
    print("AG-UI assembled:", json.dumps(out["messages"]))


def test_it_opens_a_run_cancelled_before_it_started_and_finishes_it_as_cancelled(live, session, token, alice):
    proc = agui(live, token, session)
    run = wait_for(lambda: ChatRun.objects.filter(session=session).first(), "the request to queue a run")
    services.run_stop(run, user=alice)
    out = finish(proc)
    assert_valid(out["streams"], "agui")
    [seen] = out["runs"]
    assert seen["types"][0] == "RUN_STARTED" and seen["types"][-1] == "RUN_FINISHED"
    assert seen["outcome"] == {"type": "cancelled"} and seen["error"] is None
    assert out["state"]["stop"]["reason"] == "cancelled"


def test_it_ends_a_run_that_used_its_model_calls_with_run_error(
    live, session, token, fake_openrouter, add_tool
):
    _tool_script(fake_openrouter, add_tool)
    services.session_limits_set(session, max_iterations=1)
    proc = agui(live, token, session)
    execute_next(session)
    out = finish(proc)
    assert_valid(out["streams"], "agui")
    [seen] = out["runs"]
    assert seen["outcome"] is None and seen["types"][-1] == "RUN_ERROR"
    assert seen["runError"]["code"] == "max_iterations"
    assert out["state"]["stop"]["reason"] == "max_iterations"


def test_it_asks_approval_with_an_interrupt_and_goes_on_when_resumed(live, session, token, fake_openrouter):
    _approval_script(fake_openrouter)
    proc = agui(live, token, session, message="Queue a check of the api", approve=True)
    run = execute_next(session)
    assert run.status == "waiting_approval"
    execute_next(session)
    out = finish(proc)
    assert_valid(out["streams"], "agui")
    first, second = out["runs"]
    assert first["outcome"]["type"] == "interrupt"
    [interrupt] = first["outcome"]["interrupts"]
    assert (interrupt["id"], interrupt["reason"], interrupt["toolCallId"]) == (
        "call_t",
        "tool_approval",
        "call_t",
    )
    assert second["outcome"] == {"type": "success"} and second["error"] is None
    roles = [(m["role"], m.get("toolCallId") or m.get("content")) for m in out["messages"]]
    assert roles[-2:] == [("tool", "call_t"), ("assistant", "Queued it.")]
    run.refresh_from_db()
    assert run.stop_reason == "completed" and run.tool_executions.get().decided_by.endswith("(token test)")


# --- the AI SDK's UI message stream ---------------------------------------------------------------


def ui(live: str, token: str, session, **extra) -> subprocess.Popen:
    config = {"url": f"{live}/api/chat/ui-stream", "token": token, "chatId": str(session.pk), **extra}
    return node("ui-run.mjs", {"message": "What is failing?", **config})


def parts(message: dict, kind: str) -> list[dict]:
    return [p for p in message["parts"] if p["type"] == kind]


def test_it_streams_a_run_with_a_tool_call_that_readuimessagestream_assembles(
    live, session, token, fake_openrouter, add_tool
):
    _tool_script(fake_openrouter, add_tool)
    proc = ui(live, token, session)
    run = execute_next(session)
    out = finish(proc)
    assert_valid(out["streams"], "aisdk")
    assert out["streams"][0]["header"] == "v1"
    [sent] = out["sends"]
    assert sent["errors"] == [] and sent["finishReason"] == "stop"
    message = sent["message"]
    assert message["id"] == f"chat-run-{run.pk}" and message["role"] == "assistant"
    [tool] = parts(message, "tool-failing_services")
    assert (tool["toolCallId"], tool["state"], tool["input"]) == (
        "call_a",
        "output-available",
        {"window": "24h"},
    )
    assert tool["output"] == {"services": ["api"], "window": "24h"}
    assert [p["text"] for p in parts(message, "text")] == ["The api service is failing."]
    assert parts(message, "data-stop")[0]["data"]["reason"] == "completed"
    assert parts(message, "data-budget")[0]["data"]["iterations"]["used"] == 2
    assert parts(message, "data-status")[0]["data"]["phase"] == "streaming"
    print("AI SDK assembled:", json.dumps(message))


def test_it_ends_a_cancelled_run_with_abort_and_its_finish(live, session, token, alice):
    proc = ui(live, token, session)
    run = wait_for(lambda: ChatRun.objects.filter(session=session).first(), "the request to queue a run")
    services.run_stop(run, user=alice)
    out = finish(proc)
    assert_valid(out["streams"], "aisdk")
    [sent] = out["sends"]
    assert sent["chunks"][0] == "start" and sent["chunks"][-2:] == ["abort", "finish"]
    assert sent["finishReason"] == "other"
    assert parts(sent["message"], "data-stop")[0]["data"]["reason"] == "cancelled"


def test_it_finishes_a_run_that_used_its_model_calls_as_other_not_stop(
    live, session, token, fake_openrouter, add_tool
):
    _tool_script(fake_openrouter, add_tool)
    services.session_limits_set(session, max_iterations=1)
    proc = ui(live, token, session)
    execute_next(session)
    out = finish(proc)
    assert_valid(out["streams"], "aisdk")
    [sent] = out["sends"]
    assert sent["finishReason"] == "other" and sent["errors"] == []
    assert parts(sent["message"], "data-stop")[0]["data"]["reason"] == "max_iterations"


def test_it_asks_approval_with_tool_approval_parts_and_goes_on_when_answered(
    live, session, token, fake_openrouter
):
    _approval_script(fake_openrouter)
    proc = ui(live, token, session, message="Queue a check of the api", approve=True)
    assert execute_next(session).status == "waiting_approval"
    execute_next(session)
    out = finish(proc)
    assert_valid(out["streams"], "aisdk")
    first, second = out["sends"]
    assert first["finishReason"] == "tool-calls"
    [asking] = parts(first["message"], "tool-create_task")
    assert asking["state"] == "approval-requested" and asking["approval"]["id"] == "call_t"
    assert second["finishReason"] == "stop" and second["errors"] == []
    [done] = parts(second["message"], "tool-create_task")
    assert done["state"] == "output-available" and done["input"] == {"title": "Check the api", "kind": "echo"}
    assert [p["text"] for p in parts(second["message"], "text")] == ["Queued it."]


def test_it_ends_a_stream_whose_token_is_revoked_in_its_protocols_error_form(
    live, session, make_token, tmp_path
):
    raw, admin = make_token("read", "write"), make_token("admin")
    token_id = ApiToken.objects.get(prefix=raw[:10]).pk
    other = services.session_create(session.owner, mode="normal", title="Another")
    user = {"id": "u", "role": "user"}
    requests_of = {
        "agui": (
            "/api/chat/agui",
            {"threadId": str(session.pk), "runId": "r1", "messages": [{**user, "content": "Hi"}]},
        ),
        "aisdk": (
            "/api/chat/ui-stream",
            {"id": str(other.pk), "messages": [{**user, "parts": [{"type": "text", "text": "Hi"}]}]},
        ),
    }
    streams = {
        protocol: requests.post(
            live + path,
            json=body,
            headers={"Authorization": f"Bearer {raw}"},
            stream=True,
            timeout=10,  # a read that waits longer than this fails the test
        )
        for protocol, (path, body) in requests_of.items()
    }
    wait_for(lambda: ChatRun.objects.filter(status="queued").count() == 2, "both requests to queue their run")
    revoked = requests.delete(
        f"{live}/api/tokens/{token_id}", headers={"Authorization": f"Bearer {admin}"}, timeout=10
    )
    assert revoked.status_code == 200
    texts = {protocol: response.text for protocol, response in streams.items()}  # ends: the server closed it
    assert (
        '"type": "RUN_ERROR", "message": "the token of this stream was revoked or expired"' in texts["agui"]
    )
    assert '"code": "token_revoked"' in texts["agui"]
    assert '"errorText": "the token of this stream was revoked or expired"' in texts["aisdk"]
    assert texts["aisdk"].rstrip().endswith("data: [DONE]")
    for protocol, text in texts.items():
        capture = tmp_path / f"{protocol}.sse"
        capture.write_text(text)
        checked = subprocess.run(
            ["node", str(CLIENTS / "validate.mjs"), protocol, str(capture)],
            capture_output=True,
            text=True,
            cwd=CLIENTS,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert set(ChatRun.objects.values_list("status", flat=True)) == {"queued"}  # leaving does not stop a run
