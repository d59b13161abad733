"""Each limit (steps, model calls, wall time, cost) and each loop pattern the guardrails catch."""

import itertools
from decimal import Decimal

from chat import services
from chat.models import ChatMessage, Role, ToolExecution
from routing.models import Usage
from tests.chat.conftest import (
    TEXT_CALL,
    TOOL_CALL,
    assert_timeline,
    events,
    execute,
    send,
    sequence,
    stop_of,
)
from tests.fakes.openrouter import Reply, Tool

TOOL_STEP = ["tool_start", "status:tool_running", "tool_result", "budget"]


def calls(*arguments: str, name: str = "status_of", text: str = "") -> list[Reply]:
    return [Reply(text=text, tools=[Tool(name, a)], finish_reason="tool_calls") for a in arguments]


def status_tool(add_tool, result=lambda service: f"{service}: degraded"):
    def status_of(service: str) -> str:
        """A service's status."""
        return result(service)

    add_tool(status_of)


def test_it_stops_when_the_run_has_used_its_steps(chat, fake_openrouter, add_tool):
    status_tool(add_tool)
    services.session_limits_set(chat, max_steps=2)
    fake_openrouter.script(*calls('{"service": "api"}'))
    run = execute(send(chat))
    assert sequence(run) == ["run_started", *TOOL_CALL, *TOOL_STEP, "stop_reason"]
    stop = stop_of(run)
    assert stop["reason"] == "budget_exceeded" and "2 of its steps" in stop["detail"]
    assert run.budget.as_dict()["steps"] == {"used": 2, "limit": 2}


def test_it_stops_after_the_modes_model_calls(chat, fake_openrouter, add_tool):
    status_tool(add_tool)
    services.session_limits_set(chat, max_iterations=2)
    fake_openrouter.script(*calls('{"service": "api"}', '{"service": "db"}'))
    run = execute(send(chat))
    assert sequence(run) == ["run_started", *TOOL_CALL, *TOOL_STEP, *TOOL_CALL, *TOOL_STEP, "stop_reason"]
    assert stop_of(run)["reason"] == "max_iterations" and run.iterations == 2
    assert "The run made 2 model calls" in stop_of(run)["detail"]


def test_it_says_one_model_call_in_the_singular(chat, fake_openrouter, add_tool):
    status_tool(add_tool)
    services.session_limits_set(chat, max_iterations=1)
    fake_openrouter.script(*calls('{"service": "api"}'))
    run = execute(send(chat))
    assert "The run made 1 model call," in stop_of(run)["detail"]


def test_it_takes_the_model_call_limit_from_the_modes_policy(chat):
    run = send(chat)
    assert run.budget.max_iterations == 10  # the normal policy's max_iterations


def test_it_stops_at_the_wall_time_limit_even_mid_stream(chat, fake_openrouter, alice_client):
    services.session_limits_set(chat, max_wall_seconds=1)
    fake_openrouter.script(Reply(text="slow " * 200, fragment=5, chunk_delay=0.05))
    run = execute(send(chat))
    stop = stop_of(run)
    assert stop["reason"] == "time_limit" and "1 s of wall time" in stop["detail"]
    assert run.budget.wall_seconds_used >= 1
    assert Usage.objects.get().error_code == "cancelled"
    page = alice_client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    assert "1 model call," in page, "the stopped call was made (and may have cost): it counts"


def test_it_stops_when_the_next_call_could_cost_more_than_is_left(chat, fake_openrouter):
    services.session_limits_set(chat, max_cost_usd=Decimal("0.000001"))
    run = execute(send(chat))
    assert sequence(run) == ["run_started", "status:routing", "stop_reason"]
    stop = stop_of(run)
    assert stop["reason"] == "budget_exceeded" and f"session chat-{chat.pk}" in stop["detail"]
    assert fake_openrouter.chat_bodies() == []  # refused before any call


def test_a_daily_budget_refusal_names_that_budget_and_is_listed_with_the_calls(
    chat, fake_openrouter, alice_client
):
    from routing import services as routing

    routing.budget_set(scope="global", period="day", limit_usd=Decimal("0.000001"))
    run = execute(send(chat))
    stop = stop_of(run)
    assert stop["reason"] == "budget_exceeded" and "daily budget of all calls" in stop["detail"]
    assert "Raise the daily budget of all calls on the Routing page" in stop["action"]
    assert "session" not in stop["action"], "the session's limit did not refuse it"
    refused = Usage.objects.get()
    assert refused.outcome == "refused" and refused.cost_usd == 0
    page = alice_client.get("/routing/").content.decode()
    assert f'id="routing-call-{refused.pk}" class="row-refused"' in page, "listed in Recent calls"
    assert "Refused a call" in page and "it could have cost up to $" in page


def test_it_stops_the_same_call_returning_the_same_result_four_times(chat, fake_openrouter, add_tool):
    status_tool(add_tool)
    fake_openrouter.script(*calls(*['{"service": "api"}'] * 4))
    run = execute(send(chat))
    assert sequence(run) == [
        "run_started",
        *TOOL_CALL,
        *TOOL_STEP,
        *TOOL_CALL,
        *TOOL_STEP,
        "guardrails:same_result:observe",
        *TOOL_CALL,
        *TOOL_STEP,
        "guardrails:same_result:steer",
        *TOOL_CALL,
        *TOOL_STEP,
        "guardrails:same_result:stop",
        "stop_reason",
    ]
    stop = stop_of(run)
    assert stop["reason"] == "stuck_loop" and "same result 4 times" in stop["detail"]
    assert ToolExecution.objects.count() == 4 and run.guardrails["rules"]["same_result"]["streak"] == 4
    assert_timeline(run, ["ok"] * 4)
    assert ChatMessage.objects.filter(role=Role.NOTE).count() == 1


def test_it_stops_an_a_b_ping_pong_over_six_steps(chat, fake_openrouter, add_tool):
    status_tool(add_tool)
    fake_openrouter.script(*calls(*['{"service": "api"}', '{"service": "db"}'] * 3))
    run = execute(send(chat))
    assert sequence(run) == [
        "run_started",
        *TOOL_CALL,
        *TOOL_STEP,
        *TOOL_CALL,
        *TOOL_STEP,
        *TOOL_CALL,
        *TOOL_STEP,
        *TOOL_CALL,
        *TOOL_STEP,
        "guardrails:ping_pong:observe",
        *TOOL_CALL,
        *TOOL_STEP,
        "guardrails:ping_pong:steer",
        *TOOL_CALL,
        *TOOL_STEP,
        "guardrails:ping_pong:stop",
        "stop_reason",
    ]
    assert stop_of(run)["reason"] == "stuck_loop" and "alternated" in stop_of(run)["detail"]
    assert_timeline(run, ["ok"] * 6)
    args = [e.arguments["service"] for e in ToolExecution.objects.filter(run=run).order_by("id")]
    assert args == ["api", "db"] * 3 and run.guardrail_steers == 1
    assert run.guardrails["rules"]["ping_pong"]["streak"] == 6


def test_it_stops_the_same_assistant_text_three_times(chat, fake_openrouter, add_tool):
    counter = itertools.count()
    status_tool(add_tool, result=lambda service: f"{service}: check {next(counter)}")
    fake_openrouter.script(
        *calls('{"service": "a"}', '{"service": "b"}', '{"service": "c"}', text="Let me check.")
    )
    run = execute(send(chat))
    text_call = [
        "status:routing",
        "status:calling_model",
        "status:waiting_first_token",
        "status:streaming",
        "token",
        "budget",
    ]
    assert sequence(run) == [
        "run_started",
        *text_call,
        *TOOL_STEP,
        *text_call,
        "guardrails:repeated_text:steer",
        *TOOL_STEP,
        *text_call,
        "guardrails:repeated_text:stop",
        "stop_reason",
    ]
    assert stop_of(run)["reason"] == "stuck_loop" and "same text 3 times" in stop_of(run)["detail"]
    assert_timeline(run, ["ok", "ok"])  # the third answer's call never ran: the run stopped first
    assert ChatMessage.objects.filter(run=run, role=Role.ASSISTANT, content="Let me check.").count() == 3
    assert run.guardrails["rules"]["repeated_text"]["streak"] == 3 and run.guardrail_steers == 1


def test_it_stops_after_k_steps_without_new_information(chat, fake_openrouter, add_tool, settings):
    settings.CHAT_NO_NEW_INFO_STEPS = 3
    status_tool(add_tool, result=lambda service: "no data yet")
    fake_openrouter.script(*calls(*[f'{{"service": "s{i}"}}' for i in range(4)]))
    run = execute(send(chat))
    assert sequence(run) == [
        "run_started",
        *TOOL_CALL,
        *TOOL_STEP,
        *TOOL_CALL,
        *TOOL_STEP,
        "guardrails:no_new_info:observe",
        *TOOL_CALL,
        *TOOL_STEP,
        "guardrails:no_new_info:steer",
        *TOOL_CALL,
        *TOOL_STEP,
        "guardrails:no_new_info:stop",
        "stop_reason",
    ]
    assert stop_of(run)["reason"] == "stuck_loop" and "3 steps in a row" in stop_of(run)["detail"]
    assert_timeline(run, ["ok"] * 4)
    assert run.guardrails["rules"]["no_new_info"]["streak"] == 3 and run.guardrail_steers == 1


def crossings(run) -> list[tuple[str, int]]:
    """Every threshold crossing the run's budget events told, in order."""
    return [
        (c["meter"], c["percent"])
        for e in events(run)
        if e.type == "budget"
        for c in e.data.get("crossed", [])
    ]


def test_it_tells_each_threshold_of_a_limit_once_as_usage_crosses_it(chat, fake_openrouter, add_tool):
    status_tool(add_tool)
    services.session_limits_set(chat, max_steps=4)
    fake_openrouter.script(*calls('{"service": "api"}', '{"service": "db"}'))
    run = execute(send(chat))
    assert sequence(run) == ["run_started", *TOOL_CALL, *TOOL_STEP, *TOOL_CALL, *TOOL_STEP, "stop_reason"]
    budgets = [e.data for e in events(run) if e.type == "budget"]
    assert [b["steps"]["used"] for b in budgets] == [1, 2, 3, 4]
    assert [b.get("crossed", []) for b in budgets] == [
        [],
        [{"meter": "steps", "percent": 50, "used": 2, "limit": 4}],
        [],
        [
            {"meter": "steps", "percent": 80, "used": 4, "limit": 4},
            {"meter": "steps", "percent": 100, "used": 4, "limit": 4},
        ],
    ]
    assert stop_of(run)["reason"] == "budget_exceeded"
    assert_timeline(run, ["ok", "ok"])


def test_it_tells_the_wall_time_thresholds_while_the_model_streams(chat, fake_openrouter):
    services.session_limits_set(chat, max_wall_seconds=1)
    fake_openrouter.script(Reply(text="slow " * 200, fragment=5, chunk_delay=0.05))
    run = execute(send(chat))
    assert [c for c in crossings(run) if c[0] == "wall_seconds"] == [
        ("wall_seconds", 50),
        ("wall_seconds", 80),
        ("wall_seconds", 100),
    ]
    assert stop_of(run)["reason"] == "time_limit"
    hundred = next(
        e for e in events(run) if e.type == "budget" and e.data.get("crossed", [{}])[0].get("percent") == 100
    )
    assert hundred.data["wall_seconds"]["used"] >= 1 and hundred.data["wall_seconds"]["limit"] == 1


def test_it_steers_blocks_and_stops_a_model_talking_to_itself_when_the_task_needs_tools(
    chat, fake_openrouter, add_tool, settings
):
    """The ops mode's tasks need tools (CHAT_TOOL_MODES): answers without a tool call climb the ladder."""
    assert settings.CHAT_TOOL_MODES == ["ops"] and settings.CHAT_NO_TOOL_TURNS == 4
    status_tool(add_tool)
    ops = services.session_create(chat.owner, mode="ops", title="Ops work")
    fake_openrouter.script(*[Reply(text=f"I think the api is fine ({i}).") for i in range(4)])
    run = execute(send(ops, "Restart whatever is failing."))
    assert sequence(run) == [
        "run_started",
        *TEXT_CALL,
        "guardrails:no_tool_calls:observe",
        *TEXT_CALL,
        "guardrails:no_tool_calls:steer",
        *TEXT_CALL,
        "guardrails:no_tool_calls:block",
        *TEXT_CALL,
        "guardrails:no_tool_calls:stop",
        "stop_reason",
    ]
    stop = stop_of(run)
    assert stop["reason"] == "stuck_loop" and "4 times without calling a tool" in stop["detail"]
    # The block: the call after it must call a tool.
    assert [b.get("tool_choice") for b in fake_openrouter.chat_bodies()] == [None, None, None, "required"]
    notes = list(ChatMessage.objects.filter(session=ops, role=Role.NOTE).values_list("content", flat=True))
    assert len(notes) == 2 and "call the tool" in notes[0] and "must call one" in notes[1]
    assert (run.iterations, run.guardrail_steers, run.guardrail_blocks) == (4, 1, 1)
    assert run.guardrails["rules"]["no_tool_calls"] == {"streak": 4, "action": "stop", "fingerprint": ""}
    assert_timeline(run, [])


def test_a_run_that_needs_tools_completes_once_it_called_one(chat, fake_openrouter, add_tool):
    status_tool(add_tool)
    ops = services.session_create(chat.owner, mode="ops", title="Ops work")
    fake_openrouter.script(
        Reply(text="Let me think."), *calls('{"service": "api"}'), Reply(text="The api is degraded.")
    )
    run = execute(send(ops, "What is failing?"))
    assert sequence(run) == [
        "run_started",
        *TEXT_CALL,
        "guardrails:no_tool_calls:observe",
        *TOOL_CALL,
        *TOOL_STEP,
        *TEXT_CALL,
        "stop_reason",
    ]
    assert stop_of(run)["reason"] == "completed"
    assert_timeline(run, ["ok"])


def test_a_run_in_a_mode_without_tools_needed_completes_on_a_plain_answer(chat, fake_openrouter, settings):
    assert chat.mode not in settings.CHAT_TOOL_MODES
    fake_openrouter.script(Reply(text="Hello."))
    run = execute(send(chat))
    assert run.guardrails["needs_tools"] is False
    assert (
        sequence(run) == ["run_started", *TEXT_CALL, "stop_reason"] and stop_of(run)["reason"] == "completed"
    )


def test_a_runs_own_cost_limit_is_not_news_in_the_feed(chat):
    from juggernaut.models import Event

    send(chat)
    assert not Event.objects.filter(topic="routing", type="budget_set").exists(), (
        "the chat sets its run's limit at every run: routine, not an operator's decision"
    )
