"""The state walk: on an Overview opened once (never reloaded), each engine state shows its headline
and next action within 5 s of becoming true, the Engine page says the same, and acting clears it.

States that become true by time alone (no worker alive, jobs process down, a silent worker) are
arranged to turn true a moment later, with no event published, and timed from that moment.
Screenshots (1440 and 390 px wide) go to test-artifacts/, and each row of the table of seconds is
written to test-artifacts/state-walk.md as soon as it is measured (the test run prints the table).
"""

import json
import re
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from juggernaut.engine import handlers, services
from juggernaut.engine.models import EngineState, Status, Task, Worker
from tests.conftest import ARTIFACTS, STATE_WALK, BrowserProblems, in_thread, screenshot

pytestmark = pytest.mark.browser

LIMIT = 5.0  # seconds from a state becoming true to its headline on screen
WIDE, NARROW = {"width": 1440, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture(scope="module", autouse=True)
def state_table():
    """A fresh table for this run; each test appends its rows as it measures them."""
    ARTIFACTS.mkdir(exist_ok=True)
    STATE_WALK.write_text("| state | sentence shown | seconds to show |\n|---|---|---|\n")


def record(name: str, text: str, seconds: float) -> None:
    with STATE_WALK.open("a") as table:
        table.write(f"| {name} | {text} | {max(seconds, 0):.1f} |\n")


def screenshots(page, name: str) -> None:
    """The page as it is, wide and on a phone (the layout changes; the page is not reloaded)."""
    screenshot(page, name)
    page.set_viewport_size(NARROW)
    screenshot(page, f"{name}-390")
    page.set_viewport_size(WIDE)


def builtin_kinds() -> list[str]:
    """What the built-in worker declares: the kinds its handler registry has."""
    return [h.kind for h in handlers.registered()]


class Walk:
    def __init__(self, overview, engine) -> None:
        self.overview, self.engine = overview, engine
        self.line = overview.locator("#hq-area-engine")

    def shows(self, state: str, name: str, text: str, since: float) -> None:
        """Wait for ``text`` on the Overview (timed from ``since``), then on the Engine page too."""
        expect(self.line).to_contain_text(text, timeout=LIMIT * 1000 + 2000)
        seconds = time.monotonic() - since
        record(name, text, seconds)
        expect(self.line).to_have_attribute("data-state", state)
        expect(self.engine.locator("#engine-state .engine-state-title")).to_have_text(text)
        screenshots(self.overview, f"state-{name}")
        screenshot(self.engine, f"state-{name}-engine")
        assert seconds < LIMIT, f"{name}: {seconds:.1f} s to show “{text}”"
        assert seconds > -0.5, f"{name}: shown {-seconds:.1f} s before it was true"

    def click(self, label: str) -> None:
        self.line.get_by_role("button", name=label).click()


def beat(name: str = "builtin") -> None:
    Worker.objects.filter(name=name).update(last_heartbeat=timezone.now())


def test_it_walks_every_engine_state_on_an_open_overview(signed_in_page, hq_server, browser_instance):
    overview = signed_in_page
    problems = BrowserProblems(overview)
    worker = in_thread(
        lambda: services.worker_register("builtin", capabilities=["timer"], kinds=builtin_kinds())
    )
    overview.set_viewport_size(WIDE)
    engine = overview.context.new_page()
    engine.set_viewport_size(WIDE)
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

    # blocked for a kind: no live worker runs report.weekly (no handler knows it) → the worker it names
    since = time.monotonic()
    report = in_thread(lambda: services.task_create("Weekly report", kind="report.weekly"))
    in_thread(lambda: services.engine_tick())  # the jobs process blocks it, saying why
    assert in_thread(lambda: Task.objects.get(pk=report.pk).status) == Status.BLOCKED
    walk.shows("warn", "blocked-kind", "1 task is of kind report.weekly, which no live worker runs.", since)
    handler, external = walk.line.locator(".command code").all_inner_texts()
    assert handler == '@register("report.weekly", capabilities=["report.weekly"])'
    # The fix an operator can apply without a code change: an external worker that declares the kind.
    body = json.loads(external.removeprefix("POST /api/engine/workers "))
    reports = in_thread(lambda: services.worker_register(**body))
    expect(walk.line).to_contain_text("1 task queued for 2 workers.")
    in_thread(lambda: services.task_cancel(report.pk, actor="operator:alice"))
    in_thread(lambda: services.worker_stop(reports, incarnation=reports.incarnation))
    expect(walk.line).to_contain_text("Idle: no tasks. 1 worker ready.")

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

    assert overview.evaluate("window.__marker") == "never reloaded"
    assert not problems.items and not engine_problems.items, problems.items + engine_problems.items


SECONDS = re.compile(r"^(\d+) s ago$")


def test_it_counts_ages_up_and_shows_a_silent_worker_on_an_open_engine_page(signed_in_page, hq_server):
    page = signed_in_page
    problems = BrowserProblems(page)
    builtin = in_thread(lambda: services.worker_register("builtin", kinds=builtin_kinds()))
    gpu = in_thread(lambda: services.worker_register("worker-gpu", capabilities=["gpu"]))
    page.set_viewport_size(WIDE)
    # Count the websocket's messages from the first moment: the first is the resync on connect.
    page.add_init_script(
        "window.__messages = 0;"
        "document.addEventListener('htmx:wsAfterMessage', function () {"
        "  document.documentElement.dataset.wsMessages = ++window.__messages; });"
    )
    page.goto(hq_server + "/engine/")
    expect(page.locator("body")).to_have_attribute("data-live", "open")
    expect(page.locator("html")).to_have_attribute("data-ws-messages", re.compile(r"^[1-9]"))
    page.evaluate("window.__marker = 'never reloaded'")
    title = page.locator("#engine-state .engine-state-title")
    expect(title).to_have_text("Idle: no tasks. 2 workers ready.")

    # The heartbeat age counts up in place: the same element, with no message from the server between
    # the two readings, and no reload. (The server's first timed refresh after connecting may still
    # replace the fragment once; then the element is marked again and read again.)
    age = page.locator(f"#engine-worker-{builtin.pk} .worker-heartbeat time")
    read = "el => [el.textContent, el.__mark || '', window.__messages]"
    for _ in range(4):
        age.evaluate("el => { el.__mark = 'kept'; }")
        first, _, before = age.evaluate(read)
        expect(age).not_to_have_text(first)
        later, mark, after = age.evaluate(read)
        if mark == "kept" and after == before:
            break
    assert mark == "kept" and after == before, "the fragment kept being re-sent"
    assert SECONDS.match(first) and SECONDS.match(later), (first, later)
    assert int(SECONDS.match(later)[1]) > int(SECONDS.match(first)[1])

    # A silent worker, by time alone: its last heartbeat grows too old while nobody publishes anything.
    silent_after = 3 * settings.ENGINE_HEARTBEAT_SECONDS
    in_thread(lambda: beat("builtin"))
    in_thread(
        lambda: Worker.objects.filter(pk=gpu.pk).update(
            last_heartbeat=timezone.now() - timedelta(seconds=silent_after - 1.5)
        )
    )
    since = time.monotonic() + 1.5
    badge = page.locator(f"#engine-worker-{gpu.pk} .badge")
    expect(badge).to_have_text("silent", timeout=LIMIT * 1000 + 2000)
    seconds = time.monotonic() - since
    text = "Worker worker-gpu has been silent for"
    expect(title).to_contain_text(text)
    record("silent-worker (Engine page)", title.inner_text(), seconds)
    expect(page.locator("#engine-state")).to_have_attribute("data-state", "warn")
    expect(page.locator("#engine-count-workers .n")).to_have_text("1")
    screenshots(page, "state-silent-worker-engine")
    assert seconds < LIMIT, f"silent worker: {seconds:.1f} s to show on the Engine page"
    assert seconds > -0.5, f"silent worker: shown {-seconds:.1f} s before it was true"
    assert page.evaluate("window.__marker") == "never reloaded"
    assert not problems.items, problems.items
