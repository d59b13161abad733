"""Scripted conversations on the fake OpenRouter: a plain answer, tools (one, parallel, failing),
model errors and finish reasons. Each asserts the exact event sequence and the rows."""

import threading
from decimal import Decimal

from chat.models import ChatMessage, Role, RunStatus, ToolExecution
from chat.prompt import LEFT_OUT, SYSTEM_PROMPT
from chat.tools_registry import tool_schemas
from routing.models import Budget, Policy, Usage
from routing.services import prompt_token_bounds
from tests.chat.conftest import (
    TEXT_CALL,
    TOOL_CALL,
    assert_timeline,
    events,
    execute,
    send,
    sequence,
    stop_of,
    streamed_text,
)
from tests.fakes.openrouter import Reply, Tool


def test_it_answers_a_plain_question_and_stops_completed(chat, fake_openrouter):
    fake_openrouter.script(Reply(text="Nothing is failing right now.", cost=Decimal("0.0002")))
    run = execute(send(chat))
    assert sequence(run) == ["run_started", *TEXT_CALL, "stop_reason"]
    assert streamed_text(run) == "Nothing is failing right now."
    stop = stop_of(run)
    assert stop["reason"] == "completed" and stop["action"] and "answered" in stop["detail"]
    assert (run.status, run.stop_reason, run.iterations, run.tool_calls) == (
        RunStatus.STOPPED,
        "completed",
        1,
        0,
    )
    roles = list(chat.messages.values_list("role", "content"))
    assert roles == [("user", "What is failing?"), ("assistant", "Nothing is failing right now.")]
    chat.refresh_from_db()
    assert (chat.status, chat.last_stop_reason, chat.cost_usd) == ("idle", "completed", Decimal("0.0002"))
    usage = Usage.objects.get()
    assert (usage.session, usage.run, usage.mode) == (f"chat-{chat.pk}", str(run.pk), "normal")
    assert run.budget.steps_used == 1 and run.budget.cost_usd_used == Decimal("0.0002")
    # The run's cost limit is held by routing's reservations, on the session's total budget.
    assert Budget.objects.get(session=f"chat-{chat.pk}").limit_usd == Decimal("0.5")
    request = fake_openrouter.chat_bodies()[0]
    assert (
        request["messages"][0]["role"] == "system"
        and request["messages"][-1]["content"] == "What is failing?"
    )
    assert {"list_tasks", "engine_status", "spend_today", "top_errors"} <= {
        t["function"]["name"] for t in request["tools"]
    }


def test_it_runs_a_tool_then_answers_with_its_result(chat, fake_openrouter, add_tool):
    def failing_services(window: str = "1h") -> dict:
        """Services with errors."""
        return {"window": window, "services": ["api"]}

    add_tool(failing_services)
    fake_openrouter.script(
        Reply(tools=[Tool("failing_services", '{"window": "24h"}', id="call_a")], finish_reason="tool_calls"),
        Reply(text="The api service is failing."),
    )
    run = execute(send(chat))
    assert sequence(run) == [
        "run_started",
        *TOOL_CALL,
        "tool_start",
        "status:tool_running",
        "tool_result",
        "budget",
        *TEXT_CALL,
        "stop_reason",
    ]
    assert stop_of(run)["reason"] == "completed"
    execution = ToolExecution.objects.get()
    assert (
        execution.tool_call_id,
        execution.tool,
        execution.arguments,
        execution.status,
        execution.iteration,
    ) == (
        "call_a",
        "failing_services",
        {"window": "24h"},
        "ok",
        1,
    )
    assert execution.result == {"window": "24h", "services": ["api"]} and execution.duration_ms is not None
    tool_message = ChatMessage.objects.get(role=Role.TOOL)
    assert tool_message.tool_call_id == "call_a" and '"api"' in tool_message.content
    second = fake_openrouter.chat_bodies()[1]["messages"]
    assert second[-2]["tool_calls"][0]["id"] == "call_a" and second[-1]["role"] == "tool"
    assert (run.iterations, run.tool_calls, run.budget.steps_used) == (2, 1, 3)


def test_it_runs_parallel_tool_calls_of_one_message_at_once(chat, fake_openrouter, add_tool):
    both_started = threading.Barrier(2, timeout=5)

    def probe(name: str) -> str:
        """Checks one thing."""
        both_started.wait()  # only passes when the two calls run at the same time
        return f"{name} ok"

    add_tool(probe)
    fake_openrouter.script(
        Reply(
            tools=[Tool("probe", '{"name": "db"}', id="c1"), Tool("probe", '{"name": "queue"}', id="c2")],
            finish_reason="tool_calls",
        ),
        Reply(text="Both fine."),
    )
    run = execute(send(chat))
    assert sequence(run) == [
        "run_started",
        *TOOL_CALL,
        "tool_start",
        "tool_start",
        "status:tool_running",
        "tool_result",
        "tool_result",
        "budget",
        *TEXT_CALL,
        "stop_reason",
    ]
    rows = list(ToolExecution.objects.values_list("tool_call_id", "status", "result"))
    assert rows == [("c1", "ok", "db ok"), ("c2", "ok", "queue ok")]
    assert run.tool_calls == 2 and stop_of(run)["reason"] == "completed"


def test_it_returns_a_tool_error_to_the_model_as_its_result(chat, fake_openrouter):
    fake_openrouter.script(
        Reply(
            tools=[Tool("no_such_tool", "{}", id="c1"), Tool("list_tasks", '{"limit": "many"}', id="c2")],
            finish_reason="tool_calls",
        ),
        Reply(text="Sorry."),
    )
    run = execute(send(chat))
    rows = list(ToolExecution.objects.values_list("tool_call_id", "status", "error_type"))
    assert rows == [("c1", "error", "unknown_tool"), ("c2", "error", "bad_arguments")]
    results = [e for e in events(run) if e.type == "tool_result"]
    assert [r.data["ok"] for r in results] == [False, False]
    assert "argument limit must be integer" in results[1].data["error"]
    answers = fake_openrouter.chat_bodies()[1]["messages"]
    assert [m["role"] for m in answers[-2:]] == ["tool", "tool"] and "no tool named" in answers[-2]["content"]
    assert stop_of(run)["reason"] == "completed" and run.tool_errors == 2


def test_it_blocks_a_call_failing_three_times_the_same_way_and_stops_when_asked_again(
    chat, fake_openrouter, add_tool
):
    def restart(service: str, now: str = "") -> str:
        """Restarts a service."""
        raise RuntimeError(f"deploy 4711 of {service} not found at /srv/deploys/{now or 'x'}")

    add_tool(restart, volatile=("now",))
    calls = [
        Reply(
            tools=[Tool("restart", f'{{"service": "api", "now": "t{i}"}}', id=f"c{i}")],
            finish_reason="tool_calls",
        )
        for i in range(4)
    ]
    fake_openrouter.script(*calls)
    run = execute(send(chat))
    tool_step = ["tool_start", "status:tool_running", "tool_result"]
    assert sequence(run) == [
        "run_started",
        *TOOL_CALL,
        *tool_step,
        "budget",
        "guardrails:repeated_failure:observe",
        *TOOL_CALL,
        *tool_step,
        "budget",
        "guardrails:repeated_failure:steer",
        *TOOL_CALL,
        *tool_step,
        "budget",
        "guardrails:repeated_failure:block",
        *TOOL_CALL,
        "tool_start",
        "tool_result",
        "guardrails:repeated_failure:stop",
        "stop_reason",
    ]
    stop = stop_of(run)
    assert stop["reason"] == "guardrail_blocked" and "failing 3 times" in stop["detail"]
    assert_timeline(run, ["error", "error", "error", "blocked"])
    fingerprints = set(
        ToolExecution.objects.exclude(status="blocked").values_list("failure_fingerprint", flat=True)
    )
    assert len(fingerprints) == 1 and "" not in fingerprints  # volatile "now" and the numbers do not count
    notes = list(ChatMessage.objects.filter(role=Role.NOTE).values_list("content", flat=True))
    assert len(notes) == 2 and "blocked" in notes[1]
    # The model read the steer and the block as system notes before its next calls.
    assert any(
        m["role"] == "system" and "blocked" in m["content"]
        for m in fake_openrouter.chat_bodies()[3]["messages"]
    )
    assert (run.guardrail_steers, run.guardrail_blocks, run.tool_errors) == (1, 1, 4)
    assert run.budget.retries_used == {next(iter(fingerprints)): 3}


def test_it_recovers_when_the_model_changes_course_after_a_block(chat, fake_openrouter, add_tool):
    def flaky(n: int) -> str:
        """Fails for n=1."""
        if n == 1:
            raise ValueError("bad n")
        return "fine"

    add_tool(flaky)
    fake_openrouter.script(
        *[Reply(tools=[Tool("flaky", '{"n": 1}')], finish_reason="tool_calls") for _ in range(3)],
        Reply(tools=[Tool("flaky", '{"n": 2}')], finish_reason="tool_calls"),
        Reply(text="Done another way."),
    )
    run = execute(send(chat))
    assert stop_of(run)["reason"] == "completed"
    assert_timeline(run, ["error", "error", "error", "ok"])


def test_it_retries_a_mid_stream_model_error_on_the_next_model_and_spends_what_it_cost(chat, fake_openrouter):
    fake_openrouter.script(
        Reply(
            text="Partial answer that breaks", error_after=2, cost=Decimal("0.0004")
        ),  # usage after the error
        Reply(text="Whole answer.", cost=Decimal("0.0002")),
    )
    run = execute(send(chat))
    assert sequence(run) == [
        "run_started",
        *TEXT_CALL,
        "guardrails:model_error:block",
        "status:retrying",
        *TEXT_CALL,
        "stop_reason",
    ]
    retrying = next(e for e in events(run) if e.type == "status" and e.data["phase"] == "retrying")
    assert retrying.data["discard_partial"] is True and "Provider disconnected" in retrying.data["error"]
    assert stop_of(run)["reason"] == "completed" and run.model_retries == 1
    assert ChatMessage.objects.get(role=Role.ASSISTANT).content == "Whole answer."
    usages = list(Usage.objects.order_by("id").values_list("error_code", "cost_usd"))
    assert usages == [("server_error", Decimal("0.0004")), ("", Decimal("0.0002"))]
    # The failed call's cost is spent by the run and the session, like the answer's.
    chat.refresh_from_db()
    assert run.budget.cost_usd_used == chat.cost_usd == Decimal("0.0006")
    failed_budget = [e.data for e in events(run) if e.type == "budget"][0]
    assert failed_budget["cost_usd"]["used"] == "0.0004" and failed_budget["retries"]["used"] == 1
    # The model that failed is avoided: the retry goes to the policy's next model that fits.
    first, second = (b["model"] for b in fake_openrouter.chat_bodies())
    assert first != second and second in Policy.objects.get(mode="normal").candidates
    guard = next(e.data for e in events(run) if e.type == "guardrails")
    assert guard["streak"] == 1 and guard["fingerprint"] and first in guard["message"]
    assert run.guardrails["avoid_models"] == [first]
    assert not ChatMessage.objects.filter(role=Role.NOTE).exists()  # the provider's error is not the model's


def test_it_stops_with_model_error_after_the_same_provider_error_passes_its_retries(chat, fake_openrouter):
    fake_openrouter.script(*[Reply(text="abc", error_after=1, cost=Decimal("0.0001")) for _ in range(3)])
    run = execute(send(chat))
    failed = [*TEXT_CALL]
    assert sequence(run) == [
        "run_started",
        *failed,
        "guardrails:model_error:block",
        "status:retrying",
        *failed,
        "guardrails:model_error:block",
        "status:retrying",
        *failed,
        "guardrails:model_error:stop",
        "stop_reason",
    ]
    stop = stop_of(run)
    assert stop["reason"] == "model_error" and "same error 3 times" in stop["detail"]
    assert "Provider disconnected" in stop["detail"] and "Routing page" in stop["action"]
    assert not ChatMessage.objects.filter(role=Role.ASSISTANT).exists()
    streaks = [e.data["streak"] for e in events(run) if e.type == "guardrails"]
    fingerprints = {e.data["fingerprint"] for e in events(run) if e.type == "guardrails"}
    assert streaks == [1, 2, 3] and len(fingerprints) == 1
    # Counted in the retries budget, per fingerprint, with the three calls' cost.
    assert run.budget.retries_used == {next(iter(fingerprints)): 3}
    assert run.budget.cost_usd_used == Decimal("0.0003") and Usage.objects.count() == 3
    assert (run.model_retries, ToolExecution.objects.count()) == (2, 0)
    told = [
        (c["meter"], c["percent"])
        for e in events(run)
        if e.type == "budget"
        for c in e.data.get("crossed", [])
    ]
    assert told == [("retries", 50), ("retries", 80), ("retries", 100)]  # 1, then 2 of 2 retries: each once


def test_it_stops_when_one_call_keeps_failing_with_different_errors(chat, fake_openrouter, settings):
    settings.CHAT_MODEL_RETRIES = 1
    fake_openrouter.script(
        Reply(text="abc", error_after=1, error_message="Provider disconnected"),
        Reply(text="abc", error_after=1, error_message="Upstream overloaded"),
    )
    run = execute(send(chat))
    assert sequence(run) == [
        "run_started",
        *TEXT_CALL,
        "guardrails:model_error:block",
        "status:retrying",
        *TEXT_CALL,
        "guardrails:model_error:stop",
        "stop_reason",
    ]
    stop = stop_of(run)
    assert stop["reason"] == "model_error" and "failed 2 times in a row" in stop["detail"]
    assert "Upstream overloaded" in stop["detail"] and len(run.budget.retries_used) == 2
    assert run.guardrails["rules"]["model_error"]["action"] == "stop"
    assert_timeline(run, [])


def test_it_stops_with_length_and_content_filter_as_the_model_finished(chat, fake_openrouter):
    fake_openrouter.script(Reply(text="Cut", finish_reason="length"))
    assert stop_of(execute(send(chat)))["reason"] == "length"
    fake_openrouter.script(Reply(text="", finish_reason="content_filter"))
    assert stop_of(execute(send(chat, "again")))["reason"] == "content_filter"


def test_it_leaves_the_oldest_turns_out_when_the_conversation_outgrows_the_context(chat, fake_openrouter):
    for i in range(3):
        ChatMessage.objects.create(session=chat, role=Role.USER, content=f"old question {i} " + "x" * 4000)
        ChatMessage.objects.create(session=chat, role=Role.ASSISTANT, content=f"old answer {i} " + "y" * 4000)
    newest = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "system", "content": LEFT_OUT},
        {"role": "user", "content": "And now?"},
    ]
    fits_newest = prompt_token_bounds(newest, tool_schemas())[0] + 256 + 20
    Policy.objects.filter(mode="normal").update(max_context_tokens=fits_newest)
    fake_openrouter.script(Reply(text="Now all is well."))
    run = execute(send(chat, "And now?"))
    assert stop_of(run)["reason"] == "completed"
    sent = fake_openrouter.chat_bodies()[0]["messages"]
    assert [m["content"][:12] for m in sent] == [SYSTEM_PROMPT[:12], LEFT_OUT[:12], "And now?"]
    note = ChatMessage.objects.get(role=Role.NOTE)
    assert note.content == (
        f"The 6 oldest messages are left out of the prompt to fit the normal mode's context of "
        f"{fits_newest:,} tokens."
    )
    routing = next(e for e in events(run) if e.type == "status" and e.data["phase"] == "routing")
    assert routing.data["left_out"] == 6
