"""Attention is state: what needs a human colours the Engine line, in words, with its next action,
until someone acts; states that become true by time alone show on the next read."""

from datetime import timedelta

import pytest
from django.utils import timezone

from juggernaut import hq
from juggernaut.engine import services
from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import EngineState, Status, Task, Worker


def escalate(worker, title="Refresh the catalog") -> Task:
    task = services.task_create(title, kind="noop", max_attempts=1)
    services.task_claim(worker, incarnation=worker.incarnation)
    error = "Traceback (most recent call last):\n  File 'x.py'\nValueError: boom"
    return services.task_fail(task.pk, worker_id=worker.pk, incarnation=worker.incarnation, error=error)


def test_it_keeps_an_escalated_task_red_until_someone_acknowledges_it(db, make_worker):
    worker = make_worker("builtin", [])
    task = escalate(worker)
    assert task.status == Status.ESCALATED

    line = services.engine_area_status()
    assert line.state == "error" and line.attention == 1
    assert line.text == f"Task #{task.pk} “Refresh the catalog” escalated: it needs you."
    assert [a.label for a in line.actions] == ["Retry", "Acknowledge", "See all"]
    assert line.actions[1].post == f"/engine/tasks/{task.pk}/acknowledge/"
    services.engine_tick()  # the tick does not make it calmer
    assert services.engine_area_status().state == "error"

    services.task_acknowledge(task.pk, actor="operator:alice")

    line = services.engine_area_status()
    assert line.state == "ok" and line.attention == 0 and line.text == "Idle: no tasks. 1 worker ready."
    task.refresh_from_db()
    assert task.status == Status.ESCALATED and task.acknowledged_by == "operator:alice"
    assert task.events.last().reason == "acknowledged by operator:alice"


def test_it_asks_again_when_a_retried_task_fails_again(db, make_worker):
    worker = make_worker("builtin", [])
    task = escalate(worker)
    services.task_acknowledge(task.pk, actor="operator:alice")
    services.task_retry(task.pk, actor="operator:alice")
    services.task_claim(worker, incarnation=worker.incarnation)
    services.task_fail(task.pk, worker_id=worker.pk, incarnation=worker.incarnation, error="again")
    assert services.engine_area_status().state == "error"


def test_it_cancels_an_escalated_task_and_refuses_to_acknowledge_a_pending_one(db, make_worker):
    worker = make_worker("builtin", [])
    task = escalate(worker)
    cancelled = services.task_cancel(task.pk, actor="operator:alice")
    assert cancelled.status == Status.CANCELLED
    assert services.engine_area_status().state == "ok"
    pending = services.task_create("t", kind="noop")
    with pytest.raises(EngineError, match="only failed or escalated tasks can be acknowledged") as refused:
        services.task_acknowledge(pending.pk, actor="operator:alice")
    assert refused.value.status == 409


def test_it_lists_what_needs_a_human_in_the_status_api(alice_client, make_worker):
    worker = make_worker("builtin", [])
    escalate(worker)
    waiting = services.task_create("Ship 2.4", kind="noop", needs_approval=True)

    body = alice_client.get("/api/engine/status").json()

    kinds = [f["kind"] for f in body["findings"]]
    assert kinds == ["attention", "waiting_approval"]
    approval = body["findings"][1]
    assert approval["severity"] == "warn" and approval["task_id"] == waiting.pk
    assert approval["actions"][0] == {
        "label": "Approve",
        "post": f"/engine/tasks/{waiting.pk}/approve/",
        "command": "",
        "href": "",
    }
    assert body["summary"].endswith("escalated: it needs you.")


def test_it_acknowledges_through_the_api(alice_client, make_worker):
    task = escalate(make_worker("builtin", []))
    response = alice_client.post(f"/api/engine/tasks/{task.pk}/acknowledge")
    assert response.status_code == 200 and response.json()["acknowledged_by"] == "operator:alice"
    pending = services.task_create("t", kind="noop")
    refused = alice_client.post(f"/api/engine/tasks/{pending.pk}/acknowledge")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "illegal_transition"


def test_it_names_the_command_that_starts_a_capable_worker(db, make_worker):
    make_worker("builtin", ["timer"])
    services.task_create("Render", kind="noop", required_capabilities=["gpu", "timer"])

    line = services.engine_area_status()

    assert line.state == "warn"
    assert line.text == "1 task needs capability gpu, which no live worker has."
    assert line.actions[0].command == "manage.py engine_worker --name worker-gpu --capabilities gpu,timer"
    services.worker_register("worker-gpu", capabilities=["gpu", "timer"])
    assert services.engine_area_status().state == "busy"


def test_it_says_no_worker_is_alive_once_the_last_heartbeat_is_too_old(db, make_worker, settings):
    worker = make_worker("builtin", ["timer"])
    services.task_create("Nap", kind="sleep")
    assert services.engine_area_status().state == "busy"

    # Nothing is published: only the clock moves past three missed heartbeats.
    Worker.objects.filter(pk=worker.pk).update(
        last_heartbeat=timezone.now() - timedelta(seconds=3 * settings.ENGINE_HEARTBEAT_SECONDS + 1)
    )

    line = services.engine_area_status()
    assert line.state == "error" and line.text == "No worker alive; 1 task waiting to run."
    assert line.actions[0].command == "manage.py engine_worker --name worker-1 --capabilities timer"
    assert "Worker builtin has been silent for 31 s." in line.detail
    html = hq.render_timed("overview")
    assert 'id="hq-area-engine"' in html and "No worker alive; 1 task waiting to run." in html
    # The Engine page's count of live workers is as true as its headline.
    engine_page = hq.render_timed("engine")
    assert (
        '<li class="tile tile-workers tile-alarm" id="engine-count-workers"><span class="n">0</span>'
        in engine_page
    )


def test_it_reports_an_overdue_lease_and_a_silent_jobs_process_by_the_clock(db, make_worker):
    worker = make_worker("builtin", [])
    task = services.task_create("Long", kind="noop")
    services.task_claim(worker, incarnation=worker.incarnation)
    services.engine_tick()
    Task.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=40))
    EngineState.objects.update(last_tick_at=timezone.now() - timedelta(minutes=4))

    findings = services.engine_snapshot()["findings"]

    assert [f["kind"] for f in findings] == ["tick_silent", "lease_expired"]
    assert findings[0]["message"] == "The autonomy loop has not run for 4 min: is the jobs process running?"
    assert findings[1]["message"].startswith(f"Task #{task.pk} “Long”: its lease ran out 40 s ago")
    assert findings[1]["actions"][0]["post"] == f"/engine/tasks/{task.pk}/reassign/"
    engine_page = hq.render_timed("engine")
    assert 'id="engine-state"' in engine_page and "its lease ran out" in engine_page


def test_it_heads_the_line_with_tasks_of_a_kind_no_live_worker_runs(alice_client):
    # The built-in worker declares the kinds its handler registry has; nobody handles report.weekly.
    services.worker_register("builtin", capabilities=["timer"], kinds=["echo", "noop", "sleep"])
    task = services.task_create("Weekly report", kind="report.weekly")
    services.engine_tick()
    assert Task.objects.get(pk=task.pk).status == Status.BLOCKED

    line = services.engine_area_status()

    assert line.state == "warn"
    assert line.text == "1 task is of kind report.weekly, which no live worker runs."
    register, external = line.actions
    assert (
        register.label == "Add a handler for report.weekly in an app's handlers.py, then restart the worker"
    )
    assert register.command == '@register("report.weekly", capabilities=["report.weekly"])'
    assert external.command == (
        'POST /api/engine/workers {"name": "worker-report.weekly", "kinds": ["report.weekly"], '
        '"capabilities": ["report.weekly"]}'
    )
    status = alice_client.get("/api/engine/status").json()
    assert status["summary"] == line.text
    assert status["findings"][0]["kind"] == "no_worker_for_kind"
    assert status["findings"][0]["task_kind"] == "report.weekly"
    assert status["findings"][0]["count"] == 1
    page = alice_client.get("/engine/").content.decode()
    assert f'<strong class="engine-state-title">{line.text}</strong>' in page
    assert "Idle" not in hq.render_lines()

    # The fix the line offers: a worker that declares the kind (and has what the task needs).
    services.worker_register("worker-report.weekly", kinds=["report.weekly"], capabilities=["report.weekly"])
    assert Task.objects.get(pk=task.pk).status == Status.PENDING
    assert services.engine_area_status().text == "1 task queued for 2 workers."


def test_it_names_the_worker_command_when_a_handler_for_the_kind_exists(db, handler):
    handler("report.weekly", lambda ctx: None)
    # A worker that started before the handler existed, so it does not declare the kind.
    services.worker_register("builtin", kinds=["noop"])
    services.task_create("Weekly report", kind="report.weekly")
    services.engine_tick()

    line = services.engine_area_status()

    assert line.text == "1 task is of kind report.weekly, which no live worker runs."
    assert [(a.label, a.command) for a in line.actions] == [
        ("Start a worker that runs it", "manage.py engine_worker --name worker-report.weekly")
    ]
    blocked = Task.objects.get(kind="report.weekly")
    assert blocked.reason == "No live worker runs tasks of kind report.weekly."
    assert (
        blocked.unblock_action
        == "Start a worker that runs it: manage.py engine_worker --name worker-report.weekly"
    )


def test_it_never_calls_a_blocked_task_idle(db, make_worker, settings):
    make_worker("builtin", [])
    gpu = make_worker("gpu-1", ["gpu"])
    silent = timezone.now() - timedelta(seconds=3 * settings.ENGINE_HEARTBEAT_SECONDS + 1)
    Worker.objects.filter(pk=gpu.pk).update(last_heartbeat=silent)
    services.task_create("Render", kind="noop", required_capabilities=["gpu"])
    services.engine_tick()
    # The capable worker is back by its heartbeat alone: the next tick unblocks the task.
    services.worker_heartbeat(gpu, incarnation=gpu.incarnation)
    assert Task.objects.get(kind="noop").status == Status.BLOCKED

    assert services.engine_area_status().text == "1 task queued for 2 workers."


def test_it_asks_for_the_jobs_process_when_the_loop_never_ran(db, make_worker, monkeypatch):
    make_worker("builtin", [])
    assert EngineState.load().last_tick_at is None

    # Moments after start-up that is normal: a grey note on the Engine page, no finding.
    assert services.engine_area_status().text == "Idle: no tasks. 1 worker ready."
    assert "has not run yet (it runs in the jobs process)" in hq.render_timed("engine")

    # Past the grace, counted from the engine state's creation and this process's start, both.
    old = timezone.now() - services.read_models.TICK_SILENT_AFTER - timedelta(seconds=1)
    EngineState.objects.update(created_at=old)
    assert services.engine_area_status().state == "ok"  # the process only just started
    monkeypatch.setattr(services.read_models, "STARTED_AT", old)

    line = services.engine_area_status()
    assert line.state == "warn"
    assert line.text == "The autonomy loop has never run: is the jobs process running?"
    assert [(a.label, a.command) for a in line.actions] == [("Start the jobs process", "manage.py qcluster")]
    assert services.engine_snapshot()["findings"][0]["kind"] == "tick_never"

    services.engine_tick()
    assert services.engine_area_status().text == "Idle: no tasks. 1 worker ready."


def test_it_offers_the_error_cancel_and_acknowledge_for_a_permanent_failure_not_retry(db, make_worker):
    worker = make_worker("builtin", [])
    task = services.task_create("Upload the report", kind="noop")
    services.task_claim(worker, incarnation=worker.incarnation)
    services.task_fail(
        task.pk,
        worker_id=worker.pk,
        incarnation=worker.incarnation,
        error="S3 AccessDenied: s3://reports/weekly.csv",
        permanent=True,
    )
    line = services.engine_area_status()
    assert line.text == (
        f"Task #{task.pk} “Upload the report” failed permanently (S3 AccessDenied: s3://reports/weekly.csv): "
        "it needs you."
    )
    assert [a.label for a in line.actions] == ["Open the error", "Cancel", "Acknowledge", "See all"]
    assert line.actions[0].href == f"/engine/tasks/{task.pk}/"


def test_it_says_when_make_run_restarts_a_silent_worker_and_offers_no_command(db):
    now = timezone.now()
    services.worker_register("builtin", restarted_after=45, now=now - timedelta(seconds=35))
    services.task_create("Refresh the catalog", kind="noop")
    line = services.engine_area_status(services.engine_snapshot(now=now))
    assert "make run restarts it once its heartbeat has been silent for 45 s (in about 10 s)" in line.text
    assert not any(a.command for a in line.actions), "nothing to run by hand: the supervisor acts"

    services.worker_register("by-hand", now=now - timedelta(seconds=35))
    Worker.objects.filter(name="builtin").delete()
    line = services.engine_area_status(services.engine_snapshot(now=now))
    assert any("engine_worker" in a.command for a in line.actions), "nothing restarts it: here is how"
