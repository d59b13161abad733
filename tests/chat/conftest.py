"""Chat fixtures: the fake OpenRouter, tools registered for one test, a session of alice's, runs driven
through the loop the way a background runner would, and the run's events read back from the log."""

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.db import connection

from chat import services
from chat.loop import run_execute
from chat.models import ChatRun, ChatSession
from chat.tools_registry import registry, tool_build
from juggernaut.models import Event
from juggernaut.tools import ToolSpec
from tests.routing.conftest import fake_openrouter, openrouter, seeded_policies  # noqa: F401


@pytest.fixture(autouse=True)
def chat_settings(settings):
    settings.CHAT_RUNNER = "manual"  # each test drives the loop itself
    settings.CHAT_CANCEL_POLL_SECONDS = 0.05
    settings.CHAT_HEARTBEAT_SECONDS = 0.1
    return settings


@pytest.fixture
def carol(django_user_model):
    """Another operator: alice's sessions do not exist for her."""
    return django_user_model.objects.create_user("carol", "carol@example.com", "pw-carol-1234", is_staff=True)


@pytest.fixture
def add_tool() -> Iterator[Callable]:
    """``add_tool(func, safe=True, volatile=())``: a tool for this test only."""
    added: list[str] = []

    def add(func, *, safe: bool = True, volatile: tuple[str, ...] = ()):
        registry()[func.__name__] = tool_build(func, ToolSpec(safe=safe, volatile=volatile), "tests")
        added.append(func.__name__)
        return func

    yield add
    for name in added:
        registry().pop(name, None)


@pytest.fixture
def chat(transactional_db, alice, fake_openrouter, seeded_policies):  # noqa: F811
    """alice's session in mode ``normal``, committed (the loop's watcher thread reads it)."""
    return services.session_create(alice, mode="normal", title="Ops")


def send(session: ChatSession, content: str = "What is failing?") -> ChatRun:
    return services.message_send(session, content=content, user=session.owner)


def execute(run: ChatRun) -> ChatRun:
    run_execute(run.pk)
    run.refresh_from_db()
    return run


class Background:
    """``run_execute`` on a thread, as a runner process would; joined at the end."""

    def __init__(self, run: ChatRun) -> None:
        self.run = run
        self.outcome: list = []
        self.thread = threading.Thread(target=self._target)
        self.thread.start()

    def _target(self) -> None:
        try:
            self.outcome.append(run_execute(self.run.pk))
        finally:
            connection.close()  # as a runner process's thread would

    def join(self) -> ChatRun:
        self.thread.join(20)
        assert not self.thread.is_alive(), "the run did not stop"
        self.run.refresh_from_db()
        return self.run


def wait_for(condition: Callable[[], object], what: str, timeout: float = 15.0):
    """Wait for something another thread does (a condition, not a duration, is what is asserted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def events(run: ChatRun) -> list[Event]:
    return list(Event.objects.filter(topic=run.topic).order_by("seq"))


def sequence(run: ChatRun) -> list[str]:
    """The run's event types in order; status events as ``status:<phase>``, and consecutive tokens
    (their number depends on timing, their text does not) as one ``token``."""
    out: list[str] = []
    for e in events(run):
        name = f"status:{e.data['phase']}" if e.type == "status" else e.type
        if e.type == "guardrails":
            name = f"guardrails:{e.data['rule']}:{e.data['action']}"
        if not (name == "token" and out and out[-1] == "token"):
            out.append(name)
    return out


def streamed_text(run: ChatRun) -> str:
    return "".join(e.data["delta"] for e in events(run) if e.type == "token")


def stop_of(run: ChatRun) -> dict:
    stops = [e.data for e in events(run) if e.type == "stop_reason"]
    assert len(stops) == 1, stops
    assert events(run)[-1].type == "stop_reason"
    return stops[0]


# The phases of one model call that streams text / that only asks for tools.
CALL = ["status:routing", "status:calling_model", "status:waiting_first_token"]
TEXT_CALL = [*CALL, "status:streaming", "token", "budget"]
TOOL_CALL = [*CALL, "budget"]


def assert_timeline(run: ChatRun, statuses: list[str]) -> None:
    """The run's rows in ``tool_executions`` have the given statuses, and each is on the timeline:
    one ``tool_start`` and one ``tool_result`` per row, none without a row."""
    from chat.models import ToolExecution

    rows = list(ToolExecution.objects.filter(run=run).order_by("id").values_list("tool_call_id", "status"))
    assert [status for _, status in rows] == statuses
    ids = [call_id for call_id, _ in rows]
    for kind in ("tool_start", "tool_result"):
        assert [e.data["tool_call_id"] for e in events(run) if e.type == kind] == ids, kind
