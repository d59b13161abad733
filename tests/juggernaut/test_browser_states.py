"""The state walk: on an Overview opened once (never reloaded), each engine state shows its headline
and next action within 5 s of becoming true, the Engine page says the same, and acting clears it.

States that become true by time alone (no worker alive, jobs process down) are arranged to turn true
a moment later, with no event published, and timed from that moment. Screenshots and the table of
seconds go to test-artifacts/.
"""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from juggernaut.engine import services
from juggernaut.engine.models import EngineState, Worker
from tests.conftest import ARTIFACTS, BrowserProblems, in_thread, screenshot

pytestmark = pytest.mark.browser

LIMIT = 5.0  # seconds from a state becoming true to its headline on screen


class Walk:
    def __init__(self, overview, engine) -> None:
        self.overview, self.engine = overview, engine
        self.line = overview.locator("#hq-area-engine")
        self.rows: list[tuple[str, str, float]] = []

    def shows(self, state: str, name: str, text: str, since: float) -> None:
        """Wait for ``text`` on the Overview (timed from ``since``), then on the Engine page too."""
        expect(self.line).to_contain_text(text, timeout=LIMIT * 1000 + 2000)
        seconds = time.monotonic() - since
        expect(self.line).to_have_attribute("data-state", state)
        expect(self.engine.locator("#engine-state .engine-state-title")).to_have_text(text)
        screenshot(self.overview, f"state-{name}")
        self.rows.append((name, text, seconds))
        assert seconds < LIMIT, f"{name}: {seconds:.1f} s to show “{text}”"
        assert seconds > -0.5, f"{name}: shown {-seconds:.1f} s before it was true"

    def click(self, label: str) -> None:
        self.line.get_by_role("button", name=label).click()

    def write(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        lines = ["| state | sentence shown | seconds to show |", "|---|---|---|"]
        lines += [f"| {name} | {text} | {max(seconds, 0):.1f} |" for name, text, seconds in self.rows]
        (ARTIFACTS / "state-walk.md").write_text("\n".join(lines) + "\n")


def beat(name: str = "builtin") -> None:
    Worker.objects.filter(name=name).update(last_heartbeat=timezone.now())


def test_it_walks_every_engine_state_on_an_open_overview(signed_in_page, hq_server, browser_instance):
    overview = signed_in_page
    problems = BrowserProblems(overview)
    worker = in_thread(lambda: services.worker_register("builtin", capabilities=["timer"]))
    engine = overview.context.new_page()
    engine_problems = BrowserProblems(engine)
    engine.goto(hq_server + "/engine/")
    overview.goto(hq_server + "/")
    expect(overview.locator("body")).to_have_attribute("data-live", "open")
    overview.evaluate("window.__marker = 'never reloaded'")
    walk = Walk(overview, engine)

    # idle
    walk.shows("ok", "idle", "Idle: no tasks. 1 worker ready.", time.monotonic())

    # busy
    since = time.monotonic()
    task = in_thread(lambda: services.task_create("Nightly report", kind="noop"))
    in_thread(lambda: services.task_claim(worker, incarnation=worker.incarnation))
    walk.shows("busy", "busy", "Running 1 task on 1 worker; 0 queued.", since)
    in_thread(lambda: services.task_complete(task.pk, worker_id=worker.pk, incarnation=worker.incarnation))
    expect(walk.line).to_have_attribute("data-state", "ok")

    # waiting for approval → Approve
    since = time.monotonic()
    waiting = in_thread(lambda: services.task_create("Ship release 2.4", kind="noop", needs_approval=True))
    walk.shows(
        "warn", "waiting-approval", f"Task #{waiting.pk} “Ship release 2.4” waits for your approval.", since
    )
    walk.click("Approve")
    expect(walk.line).to_contain_text("1 task queued for 1 worker.")
    in_thread(lambda: services.task_cancel(waiting.pk, actor="operator:alice"))

    # paused → Resume
    since = time.monotonic()
    in_thread(lambda: services.engine_pause(actor="operator:alice", reason="deploying 2.4"))
    walk.shows("warn", "paused", "Engine paused by alice: deploying 2.4. 0 running, 0 queued.", since)
    walk.click("Resume")
    expect(walk.line).to_contain_text("Idle: no tasks. 1 worker ready.")

    # blocked for a capability → start a worker with it (the command shown)
    since = time.monotonic()
    render = in_thread(
        lambda: services.task_create("Render video", kind="noop", required_capabilities=["gpu"])
    )
    walk.shows("warn", "blocked-capability", "1 task needs capability gpu, which no live worker has.", since)
    command = walk.line.locator(".command code").inner_text()
    assert command == "manage.py engine_worker --name worker-gpu --capabilities gpu"
    walk.line.get_by_role("button", name="Copy").click()
    gpu = in_thread(lambda: services.worker_register("worker-gpu", capabilities=["gpu"]))
    expect(walk.line).to_contain_text("1 task queued for 2 workers.")
    in_thread(lambda: services.task_cancel(render.pk, actor="operator:alice"))
    in_thread(lambda: services.worker_stop(gpu, incarnation=gpu.incarnation))

    # no worker alive, by time alone: the last heartbeat grows too old while nobody publishes anything
    in_thread(lambda: services.task_create("Rotate logs", kind="noop", max_attempts=1))
    expect(walk.line).to_contain_text("1 task queued for 1 worker.")
    silent_after = 3 * settings.ENGINE_HEARTBEAT_SECONDS
    in_thread(
        lambda: Worker.objects.filter(name="builtin").update(
            last_heartbeat=timezone.now() - timedelta(seconds=silent_after - 1.5)
        )
    )
    since = time.monotonic() + 1.5
    walk.shows("error", "no-worker", "No worker alive; 1 task waiting to run.", since)
    assert "manage.py engine_worker --name worker-1" in walk.line.locator(".command code").inner_text()
    in_thread(beat)  # the worker is back (what `manage.py engine_worker` does on start)
    expect(walk.line).to_contain_text("1 task queued for 1 worker.")

    # escalated → Acknowledge
    in_thread(beat)
    since = time.monotonic()

    def escalate():
        claimed = services.task_claim(worker, incarnation=worker.incarnation)[0]
        error = "Traceback (most recent call last):\n  File 'rotate.py'\nOSError: disk full"
        return services.task_fail(
            claimed.pk, worker_id=worker.pk, incarnation=worker.incarnation, error=error
        )

    escalated = in_thread(escalate)
    assert escalated.status == "escalated"
    walk.shows("error", "escalated", f"Task #{escalated.pk} “Rotate logs” escalated: it needs you.", since)
    assert walk.line.locator(".badge-attention").inner_text() == "1 needs you"
    walk.click("Acknowledge")
    expect(walk.line).to_contain_text("Idle: no tasks. 1 worker ready.")

    # jobs process down, by time alone: the autonomy loop's last tick grows too old
    in_thread(beat)
    in_thread(
        lambda: EngineState.objects.update(
            last_tick_at=timezone.now() - services.read_models.TICK_SILENT_AFTER + timedelta(seconds=1.5)
        )
    )
    since = time.monotonic() + 1.5
    text = "The autonomy loop has not run for 3 min: is the jobs process running?"
    walk.shows("error", "jobs-down", text, since)
    assert walk.line.locator(".command code").inner_text() == "manage.py qcluster"
    in_thread(lambda: services.engine_tick())  # the jobs process is back
    expect(walk.line).to_contain_text("Idle: no tasks. 1 worker ready.")

    walk.write()
    assert overview.evaluate("window.__marker") == "never reloaded"
    assert not problems.items and not engine_problems.items, problems.items + engine_problems.items
