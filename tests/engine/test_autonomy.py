"""The autonomy loop: rescue, reroute, unblock rules, backoff and escalation, the stuck detector."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from juggernaut.engine import services
from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import EngineState, Status, Task, TaskEvent, Worker
from juggernaut.models import Event


def test_it_rescues_a_dead_workers_task_and_refuses_its_late_answer(db, short_lease, make_worker):
    dead = make_worker("dead")
    task = services.task_create("t", kind="noop")
    [claimed] = services.task_claim(dead, incarnation=dead.incarnation)
    later = timezone.now() + timedelta(seconds=2)

    report = services.engine_tick(now=later)

    assert report.rescued == 1
    task.refresh_from_db()
    assert task.status == Status.PENDING and task.lease_owner is None and task.attempts == 1
    alive = make_worker("alive")
    [again] = services.task_claim(alive, incarnation=alive.incarnation, now=later + timedelta(seconds=1))
    assert again.pk == task.pk
    services.task_complete(task.pk, worker_id=alive.pk, incarnation=alive.incarnation, result={"by": "alive"})
    with pytest.raises(EngineError) as exc:
        services.task_complete(
            task.pk, worker_id=dead.pk, incarnation=dead.incarnation, result={"by": "dead"}
        )
    assert exc.value.status == 409 and exc.value.code == "lease_lost"
    task.refresh_from_db()
    assert task.status == Status.DONE and task.result == {"by": "alive"} and task.attempts == 2


def test_it_keeps_a_lease_alive_with_heartbeats(db, short_lease, make_worker):
    worker = make_worker()
    task = services.task_create("t", kind="noop")
    services.task_claim(worker, incarnation=worker.incarnation)
    later = timezone.now() + timedelta(seconds=5)
    services.task_heartbeat(task.pk, worker_id=worker.pk, incarnation=worker.incarnation, now=later)

    assert services.engine_tick(now=later).rescued == 0
    assert Task.objects.get(pk=task.pk).status == Status.RUNNING


def test_it_backs_off_and_escalates_after_max_attempts(db, settings, make_worker):
    settings.ENGINE_BACKOFF_BASE_SECONDS = 10
    worker = make_worker()
    task = services.task_create("flaky", kind="noop", max_attempts=2)
    now = timezone.now()

    services.task_claim(worker, incarnation=worker.incarnation, now=now)
    first = services.task_fail(
        task.pk, worker_id=worker.pk, incarnation=worker.incarnation, error="boom", now=now
    )
    assert first.status == Status.PENDING
    assert timedelta(seconds=10) <= first.next_attempt_at - now <= timedelta(seconds=12.5)
    assert services.task_claim(worker, incarnation=worker.incarnation, now=now + timedelta(seconds=5)) == []

    retry_at = first.next_attempt_at
    services.task_claim(worker, incarnation=worker.incarnation, now=retry_at)
    second = services.task_fail(
        task.pk, worker_id=worker.pk, incarnation=worker.incarnation, error="boom again", now=retry_at
    )
    assert second.status == Status.ESCALATED and second.attempts == 2
    assert "2 of 2 attempts" in second.reason and "boom again" in second.reason
    assert second.unblock_action


def test_it_doubles_the_backoff_each_attempt(settings):
    settings.ENGINE_BACKOFF_BASE_SECONDS = 10
    assert 10 <= services.backoff_delay(1).total_seconds() <= 12.5
    assert 40 <= services.backoff_delay(3).total_seconds() <= 50


def test_it_fails_at_once_on_a_permanent_error(db, make_worker):
    worker = make_worker()
    task = services.task_create("bad payload", kind="noop", max_attempts=5)
    services.task_claim(worker, incarnation=worker.incarnation)
    failed = services.task_fail(
        task.pk, worker_id=worker.pk, incarnation=worker.incarnation, error="no such repo", permanent=True
    )
    assert failed.status == Status.FAILED and failed.attempts == 1


def test_it_blocks_tasks_no_live_worker_can_run_and_unblocks_on_register(db, make_worker):
    make_worker("plain", ["git"])
    task = services.task_create("needs a GPU", kind="noop", required_capabilities=["git", "gpu"])

    assert services.engine_tick().blocked == 1
    task.refresh_from_db()
    assert task.status == Status.BLOCKED and task.reason_code == "no_capable_worker"
    assert "gpu" in task.reason and "git" not in task.reason
    assert "gpu" in task.unblock_action

    make_worker("big", ["git", "gpu"])
    task.refresh_from_db()
    assert task.status == Status.PENDING and task.reason == ""


def test_it_says_when_no_worker_is_alive(db):
    task = services.task_create("t", kind="noop")
    services.engine_tick()
    task.refresh_from_db()
    assert task.status == Status.BLOCKED and task.reason == "No worker is alive to run it."
    assert services.engine_area_status().state == "error"


def test_it_does_not_count_a_silent_worker_as_capable(db, settings, make_worker):
    worker = make_worker("gone", ["gpu"])
    Worker.objects.filter(pk=worker.pk).update(last_heartbeat=timezone.now() - timedelta(minutes=5))
    services.task_create("t", kind="noop", required_capabilities=["gpu"])
    assert services.engine_tick().blocked == 1


def test_it_asks_for_approval_by_policy(db, handler, make_worker):
    handler("deploy.prod", lambda ctx: None, needs_approval=True)
    make_worker("w", [])
    task = services.task_create("ship it", kind="deploy.prod", required_capabilities=[])

    assert task.status == Status.WAITING_APPROVAL
    assert "approval" in task.reason and task.unblock_action.startswith("Approve")
    approved = services.task_approve(task.pk, actor="operator:alice")
    assert approved.status == Status.PENDING and approved.approved_by == "operator:alice"
    services.engine_tick()
    assert Task.objects.get(pk=task.pk).status == Status.PENDING  # approval is not asked twice


def test_it_sends_long_blocked_tasks_for_approval(db, settings):
    settings.ENGINE_BLOCKED_ESCALATE_MINUTES = 30
    task = services.task_create("t", kind="noop", required_capabilities=["quantum"])
    services.engine_tick()
    assert services.engine_tick(now=timezone.now() + timedelta(minutes=10)).waiting == 0

    services.engine_tick(now=timezone.now() + timedelta(minutes=31))
    task.refresh_from_db()
    assert task.status == Status.WAITING_APPROVAL and task.reason_code == "blocked_too_long"
    assert "Blocked for over 30 min: No worker is alive" in task.reason and "quantum" in task.unblock_action


def test_it_sends_a_task_whose_dependency_failed_for_approval(db, make_worker):
    worker = make_worker()
    first = services.task_create("build", kind="noop")
    second = services.task_create("deploy", kind="noop", depends_on=first.pk)
    services.task_claim(worker, incarnation=worker.incarnation)
    services.task_fail(
        first.pk, worker_id=worker.pk, incarnation=worker.incarnation, error="x", permanent=True
    )

    services.engine_tick()
    second.refresh_from_db()
    assert second.status == Status.WAITING_APPROVAL and second.reason_code == "dependency_failed"
    assert f"#{first.pk}" in second.reason and "failed" in second.reason

    services.task_approve(second.pk, actor="operator:alice")
    assert [t.pk for t in services.task_claim(worker, incarnation=worker.incarnation)] == [second.pk]


def test_it_rescues_a_restarted_workers_tasks_at_once(db, make_worker):
    old = make_worker("builtin")
    task = services.task_create("t", kind="noop")
    services.task_claim(old, incarnation=old.incarnation)
    make_worker("builtin")
    task.refresh_from_db()
    assert task.status == Status.PENDING and task.lease_owner is None


def test_it_reports_stuck_things_once(db, settings, make_worker):
    settings.ENGINE_STUCK_QUEUE_MINUTES = 10
    worker = make_worker("quiet", [])
    services.task_create("old", kind="noop")
    later = timezone.now() + timedelta(minutes=11)
    Worker.objects.filter(pk=worker.pk).update(last_heartbeat=later)  # alive, so nothing is blocked

    first = services.engine_tick(now=later)
    second = services.engine_tick(now=later + timedelta(seconds=15))

    assert first.new_findings == 1 and second.new_findings == 0
    assert Event.objects.filter(topic="engine", type="stuck_detected").count() == 1
    assert any("waited" in f["message"] for f in services.engine_snapshot(now=later)["findings"])


def test_it_reports_a_silent_worker_and_an_overdue_task(db, make_worker):
    worker = make_worker("slow", [])
    task = services.task_create("long", kind="noop", timeout_seconds=60)
    services.task_claim(worker, incarnation=worker.incarnation)
    later = timezone.now() + timedelta(minutes=2)
    Task.objects.filter(pk=task.pk).update(lease_expires_at=later + timedelta(minutes=1))

    services.engine_tick(now=later)

    kinds = sorted(f["kind"] for f in EngineState.load().findings.values())
    assert kinds == ["task_overdue", "worker_silent"]


@pytest.mark.django_db(transaction=True)
def test_it_never_double_applies_two_concurrent_ticks(short_lease):
    worker = services.worker_register("dead", capabilities=[])
    tasks = [services.task_create(f"t{i}", kind="noop") for i in range(40)]
    services.task_claim(worker, incarnation=worker.incarnation, limit=40)
    services.task_create("unrunnable", kind="noop", required_capabilities=["nobody-has-this"])
    services.worker_register("alive", capabilities=[])
    later = timezone.now() + timedelta(seconds=5)
    Worker.objects.filter(name="alive").update(last_heartbeat=later)
    reports = []
    barrier = threading.Barrier(2)

    def tick() -> None:
        try:
            barrier.wait()
            reports.append(services.engine_tick(now=later))
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert len(reports) == 2
    assert sum(r.rescued for r in reports) == 40
    assert sum(r.blocked for r in reports) == 1
    assert TaskEvent.objects.filter(from_status=Status.RUNNING, to_status=Status.PENDING).count() == 40
    assert TaskEvent.objects.filter(to_status=Status.BLOCKED).count() == 1
    assert all(t.attempts == 1 for t in Task.objects.filter(pk__in=[t.pk for t in tasks]))


def test_it_runs_the_scheduled_tick(db, settings, short_lease, make_worker):
    from juggernaut.engine import tasks

    settings.ENGINE_TICK_SECONDS = 600  # one tick per scheduled run
    worker = make_worker()
    services.task_create("t", kind="noop")
    services.task_claim(worker, incarnation=worker.incarnation, now=timezone.now() - timedelta(seconds=5))

    totals = tasks.engine_tick()

    assert totals["ticks"] == 1 and totals["rescued"] == 1
    assert EngineState.load().last_tick_at is not None


def test_it_says_when_the_autonomy_loop_has_gone_silent(db, make_worker):
    make_worker("w1", ["echo"])
    services.engine_tick()
    assert "silent" not in services.engine_area_status().detail
    EngineState.objects.update(last_tick_at=timezone.now() - timedelta(minutes=7))
    line = services.engine_area_status()
    assert line.state == "error"
    assert line.text == "The autonomy loop has not run for 7 min: is the jobs process running?"
    assert line.actions[0].command == "manage.py qcluster"
    assert services.engine_snapshot()["findings"][0]["kind"] == "tick_silent"
