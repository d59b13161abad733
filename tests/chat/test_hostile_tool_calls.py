"""Tool calls are model output, and model output is data: arguments with non-finite numbers and ids the
store cannot hold are refused calls the model reads as the tool's error, never a run that dies."""

import pytest

from chat.models import ToolExecution
from tests.chat.conftest import events, execute, send, stop_of
from tests.fakes.openrouter import Reply, Tool

LONG_ID = "call_" + "x" * 200


@pytest.mark.parametrize(
    "arguments",
    ['{"limit": 1e999}', '{"limit": Infinity}', '{"limit": -Infinity}', '{"limit": NaN}', '{"x": [1e400]}'],
)
def test_it_refuses_non_finite_arguments_as_the_tools_error(chat, fake_openrouter, arguments):
    fake_openrouter.script(
        Reply(tools=[Tool("list_tasks", arguments, id="c1")], finish_reason="tool_calls"),
        Reply(text="Understood."),
    )
    run = execute(send(chat))
    assert stop_of(run)["reason"] == "completed" and run.status == "stopped"
    execution = ToolExecution.objects.get()
    assert (execution.status, execution.error_type) == ("error", "bad_arguments")
    assert "finite" in execution.error
    answer = fake_openrouter.chat_bodies()[1]["messages"][-1]
    assert answer["role"] == "tool" and answer["tool_call_id"] == "c1" and "finite" in answer["content"]


def test_it_refuses_a_tool_call_whose_id_is_too_long(chat, fake_openrouter):
    fake_openrouter.script(
        Reply(tools=[Tool("list_tasks", "{}", id=LONG_ID)], finish_reason="tool_calls"),
        Reply(text="Understood."),
    )
    run = execute(send(chat))
    assert stop_of(run)["reason"] == "completed" and run.status == "stopped"
    execution = ToolExecution.objects.get()
    assert (execution.status, execution.error_type) == ("error", "bad_call_id")
    results = [e for e in events(run) if e.type == "tool_result"]
    assert [r.data["ok"] for r in results] == [False]
    # The model reads the refusal on the same call it made, so the conversation stays well-formed.
    messages = fake_openrouter.chat_bodies()[1]["messages"]
    call_id = messages[-2]["tool_calls"][0]["id"]
    assert messages[-1]["role"] == "tool" and messages[-1]["tool_call_id"] == call_id
    assert len(call_id) <= 100 and "id" in messages[-1]["content"]
