"""Chat tools: the decorator, discovery of ``<app>/tools.py``, schemas from hints and docstrings,
argument checks, and engine tools acting as the session's owner through the engine's services."""

import pytest

from chat.tools_registry import ToolArgumentError, parse_docstring, registry, tool_get
from juggernaut.engine import services as engine
from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import Status
from juggernaut.tools import ToolRefused, ToolSpec, tool, tool_spec


def test_it_records_safety_and_volatile_keys_on_the_function():
    @tool(safe=False, volatile=("now",))
    def restart(service: str, now: str = "") -> str:
        """Restart."""
        return service

    assert tool_spec(restart) == ToolSpec(safe=False, volatile=("now",))
    assert tool_spec(tool(lambda: 1)) == ToolSpec() and tool_spec(print) is None


def test_it_finds_every_apps_tools_with_their_safety():
    tools = registry()
    safe = {name for name, t in tools.items() if t.safe}
    unsafe = {name for name, t in tools.items() if not t.safe}
    assert {
        "list_tasks",
        "list_workers",
        "engine_status",
        "spend_today",
        "budgets",
        "policies",
        "top_errors",
        "error_detail",
    } <= safe
    assert {"create_task", "approve_task", "retry_task"} <= unsafe
    assert tools["top_errors"].app == "logscrawler" and tools["list_tasks"].app == "engine"


def test_it_builds_an_openai_schema_from_hints_and_docstring():
    assert tool_get("approve_task").schema() == {
        "type": "function",
        "function": {
            "name": "approve_task",
            "description": "Approve an engine task that waits for approval, so it runs.",
            "parameters": {
                "type": "object",
                "properties": {"task_id": {"type": "integer", "description": "the task's id"}},
                "required": ["task_id"],
                "additionalProperties": False,
            },
        },
    }
    props = tool_get("list_tasks").parameters["properties"]
    assert props["status"]["enum"][:2] == ["pending", "running"] and props["limit"] == {
        "type": "integer",
        "default": 10,
        "description": "how many, 1 to 25",
    }
    assert tool_get("create_task").parameters["properties"]["payload"]["type"] == "object"
    assert parse_docstring("Does a thing.\n\nMore words\nhere.\n\nn: how many") == (
        "Does a thing.\n\nMore words here.",
        {"n": "how many"},
    )


@pytest.mark.django_db
def test_it_checks_arguments_before_calling(alice):
    list_tasks = tool_get("list_tasks")
    for bad, words in [
        ({"limit": "5"}, "limit must be integer"),
        ({"limit": True}, "limit must be integer"),
        ({"status": "weird"}, "status must be one of"),
        ({"x": 1}, "unknown argument(s) x"),
    ]:
        with pytest.raises(ToolArgumentError, match=words.replace("(", r"\(").replace(")", r"\)")):
            list_tasks.call(bad, user=alice)
    with pytest.raises(ToolArgumentError, match="missing required argument task_id"):
        tool_get("approve_task").call({}, user=alice)


@pytest.mark.django_db
def test_it_acts_as_the_operator_through_the_engines_services(alice):
    task = engine.task_create("deploy", kind="deploy.prod", needs_approval=True)
    listed = tool_get("list_tasks").call({"status": "waiting_approval"}, user=alice)
    assert [t["id"] for t in listed] == [task.pk]
    approved = tool_get("approve_task").call({"task_id": task.pk}, user=alice)
    task.refresh_from_db()
    assert approved["status"] == task.status == Status.PENDING and task.approved_by == "operator:alice"
    # The same refusal an operator's button gets: approving twice is an illegal transition.
    with pytest.raises(EngineError) as refused:
        tool_get("approve_task").call({"task_id": task.pk}, user=alice)
    assert refused.value.code == "illegal_transition"
    status = tool_get("engine_status").call({}, user=alice)
    assert status["counts"]["pending"] == 1 and status["paused"] is False


@pytest.mark.django_db
def test_it_refuses_to_act_for_an_owner_who_is_no_longer_an_operator(alice):
    alice.is_staff = False
    alice.save()
    with pytest.raises(ToolRefused):
        tool_get("list_workers").call({}, user=alice)
    with pytest.raises(ToolRefused):
        tool_get("create_task").call({"title": "x", "kind": "noop"}, user=alice)
