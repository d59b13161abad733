"""Run controls: Stop mid-stream and mid-tool, approvals granted and denied, a busy session refusing a
message, and a run whose process died closed as interrupted, then resumed."""

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from chat import services
from chat.errors import ChatError
from chat.models import ChatMessage, ChatRun, Role, RunStatus, ToolExecution
from juggernaut.engine.models import Task
from routing.models import Reservation, Usage
from tests.chat.conftest import (
    TEXT_CALL,
    TOOL_CALL,
    Background,
    events,
    execute,
    send,
    sequence,
    stop_of,
    wait_for,
)
from tests.conftest import ROOT, database_url_for_subprocess
from tests.fakes.openrouter import Reply, Stall, Tool


def test_it_stops_mid_stream_and_settles_the_call(chat, fake_openrouter, alice):
    fake_openrouter.script(Reply(text="word " * 400, fragment=5, chunk_delay=0.02))
    run = send(chat)
    background = Background(run)
    wait_for(lambda: any(e.type == "token" for e in events(run)), "the first tokens")
    services.run_stop(run, user=alice)
    run = background.join()
    # The cut call's settled cost is the run's spend too: one budget event before the stop.
    assert sequence(run) == ["run_started", *TEXT_CALL, "stop_reason"]
    stop = stop_of(run)
    assert stop["reason"] == "cancelled" and stop["detail"] == "Stopped by operator:alice."
    assert run.cancel_requested_at is not None and run.ended_at is not None
    # What was shown stays in the conversation, marked as cut off (the page reads the same after a reload).
    (kept,) = ChatMessage.objects.filter(role=Role.ASSISTANT)
    shown = "".join(e.data["delta"] for e in events(run) if e.type == "token")
    assert shown.startswith("word ") and kept.content == f"{shown}\n\n*(cut off: the run was stopped)*"
    # The call was cut short: recorded as cancelled, its reservation settled.
    usage = Usage.objects.get()
    assert usage.error_code == "cancelled"
    assert not Reservation.objects.filter(settled_at__isnull=True).exists()
    chat.refresh_from_db()
    assert run.budget.cost_usd_used == usage.cost_usd == chat.cost_usd


def test_it_stops_while_the_model_has_not_answered_yet(chat, fake_openrouter, alice):
    # The provider sends nothing, not even its headers, for 30 s: Stop must not wait for it.
    fake_openrouter.script(Reply(text="too late", headers_delay=30))
    run = send(chat)
    background = Background(run)
    wait_for(lambda: ChatRun.objects.get(pk=run.pk).phase == "calling_model", "the model call")
    services.run_stop(run, user=alice)
    run = background.join()
    stop = stop_of(run)
    assert stop["reason"] == "cancelled" and stop["detail"] == "Stopped by operator:alice."
    assert sequence(run)[-1] == "stop_reason" and "token" not in sequence(run)
    usage = Usage.objects.get()
    assert usage.error_code == "cancelled"
    assert not Reservation.objects.filter(settled_at__isnull=True).exists()


def test_it_stops_mid_tool_without_waiting_for_the_tool(chat, fake_openrouter, add_tool, alice):
    release = threading.Event()

    def slow_check() -> str:
        """Takes its time."""
        release.wait(10)
        return "done"

    add_tool(slow_check)
    fake_openrouter.script(Reply(tools=[Tool("slow_check", "{}", id="c1")], finish_reason="tool_calls"))
    run = send(chat)
    background = Background(run)
    wait_for(lambda: ToolExecution.objects.filter(status="running").exists(), "the tool to run")
    services.run_stop(run, user=alice)
    run = background.join()
    release.set()
    assert sequence(run) == ["run_started", *TOOL_CALL, "tool_start", "status:tool_running", "stop_reason"]
    assert stop_of(run)["reason"] == "cancelled"
    assert ToolExecution.objects.get().status == "cancelled"


def test_it_stops_a_queued_run_at_once(chat, alice):
    run = send(chat)
    run = services.run_stop(run, user=alice)
    assert (run.status, run.stop_reason) == (RunStatus.STOPPED, "cancelled")
    assert sequence(run) == ["stop_reason"]
    assert execute(run).stop_reason == "cancelled"  # a late runner finds nothing to do


def test_it_refuses_a_message_while_a_run_is_active(chat):
    run = send(chat)
    with pytest.raises(ChatError) as refused:
        send(chat, "And another thing")
    assert refused.value.status == 409 and refused.value.code == "run_active"
    assert f"run {run.pk} is queued" in refused.value.message
    assert ChatRun.objects.count() == 1 and ChatMessage.objects.count() == 1


def _approval_script(fake_openrouter):
    fake_openrouter.script(
        Reply(
            tools=[Tool("create_task", '{"title": "Check the api", "kind": "echo"}', id="c1")],
            finish_reason="tool_calls",
        ),
        Reply(text="Queued it."),
    )


def test_it_waits_for_approval_of_an_unsafe_tool_and_runs_it_once_approved(chat, fake_openrouter, alice):
    _approval_script(fake_openrouter)
    run = execute(send(chat, "Queue a check of the api"))
    assert (run.status, run.phase) == ("waiting_approval", "waiting_approval")
    assert ToolExecution.objects.get().status == "waiting_approval" and not Task.objects.exists()
    chat.refresh_from_db()
    assert chat.status == "waiting_approval"
    waiting = events(run)[-1]
    assert waiting.data["approvals"] == [
        {"tool_call_id": "c1", "name": "create_task", "args": {"title": "Check the api", "kind": "echo"}}
    ]
    services.run_approve(run, tool_call_id="c1", approve=True, user=alice)
    run = execute(run)
    assert sequence(run) == [
        "run_started",
        *TOOL_CALL,
        "tool_start",
        "status:waiting_approval",
        "status:queued",
        "status:tool_running",
        "tool_result",
        "budget",
        *TEXT_CALL,
        "stop_reason",
    ]
    assert stop_of(run)["reason"] == "completed"
    task = Task.objects.get()
    # The tool acted as the session's owner, through the engine's own service.
    assert (task.title, task.kind, task.source, task.created_by) == (
        "Check the api",
        "echo",
        "chat",
        "operator:alice",
    )
    execution = ToolExecution.objects.get()
    assert (execution.status, execution.decided_by, execution.result["id"]) == (
        "ok",
        "operator:alice",
        task.pk,
    )


def test_it_tells_the_model_when_the_operator_denies_a_call(chat, fake_openrouter, alice):
    _approval_script(fake_openrouter)
    run = execute(send(chat, "Queue a check of the api"))
    services.run_approve(run, tool_call_id="c1", approve=False, user=alice)
    run = execute(run)
    assert stop_of(run)["reason"] == "completed" and not Task.objects.exists()
    result = next(e for e in events(run) if e.type == "tool_result")
    assert result.data["ok"] is False and "denied" in result.data["error"]
    assert ToolExecution.objects.get().status == "denied"
    assert result.data["denied"] is True and run.tool_errors == 0, "a denial is not a failed tool call"
    assert "denied" in fake_openrouter.chat_bodies()[1]["messages"][-1]["content"]
    with pytest.raises(ChatError) as again:
        services.run_approve(run, tool_call_id="c1", approve=True, user=alice)
    assert again.value.status == 409


def test_it_stops_a_run_waiting_for_approval_at_once(chat, fake_openrouter, alice):
    _approval_script(fake_openrouter)
    run = execute(send(chat))
    run = services.run_stop(run, user=alice)
    assert run.stop_reason == "cancelled" and ToolExecution.objects.get().status == "cancelled"


def test_it_closes_a_silent_run_as_interrupted_by_its_heartbeat(chat):
    run = send(chat)
    beat = timezone.now() - timedelta(seconds=60)
    ChatRun.objects.filter(pk=run.pk).update(
        status="running", phase="streaming", heartbeat_at=beat, lease_owner="x"
    )
    alive = send_other_alive_run(chat.owner)
    assert services.runs_sweep() == [run.pk]
    run.refresh_from_db()
    stop = stop_of(run)
    assert stop["reason"] == "interrupted" and "60 s ago, while it was streaming" in stop["detail"]
    assert stop["action"] == "Resume the run to continue from where it stopped."
    alive.refresh_from_db()
    assert alive.status == "running"  # its heartbeat is fresh
    assert services.runs_sweep() == []  # exactly one stop_reason


def send_other_alive_run(owner) -> ChatRun:
    other = services.session_create(owner, mode="normal", title="Other")
    run = send(other)
    ChatRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=timezone.now(), lease_owner="y")
    return run


@pytest.mark.process
def test_it_closes_the_run_of_a_killed_process_as_interrupted_and_resumes_it(chat, fake_openrouter, alice):
    fake_openrouter.script(Stall(seconds=30))
    run = send(chat)
    env = dict(
        os.environ,
        DATABASE_URL=database_url_for_subprocess(),
        DEBUG="1",
        OPENROUTER_BASE_URL=fake_openrouter.url,
        OPENROUTER_API_KEY=fake_openrouter.api_key,
        CHAT_HEARTBEAT_SECONDS="0.1",
    )
    code = f"import django; django.setup(); from chat.loop import run_execute; run_execute({run.pk})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "juggernaut.settings"}
    )
    try:
        wait_for(
            lambda: ChatRun.objects.filter(pk=run.pk, phase="waiting_first_token").exists(), "the model call"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    beat = ChatRun.objects.get(pk=run.pk).heartbeat_at
    assert services.runs_sweep() == []  # still within its lease
    assert services.runs_sweep(now=beat + timedelta(seconds=21)) == [run.pk]
    run.refresh_from_db()
    assert (run.status, run.stop_reason) == ("stopped", "interrupted")
    assert sequence(run)[0] == "run_started" and sequence(run)[-1] == "stop_reason"
    fake_openrouter.script(Reply(text="Here is the answer."))
    resumed = execute(services.run_resume(run, user=alice))
    assert resumed.resumed_from_id == run.pk and stop_of(resumed)["reason"] == "completed"
    # The question was asked once; the resumed run answered it.
    assert list(chat.messages.values_list("role", flat=True)) == ["user", "assistant"]
