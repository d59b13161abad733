"""Each repair fixes the fault its finding names, and the diagnosis after it says so."""

from datetime import timedelta

import pytest
from django.utils import timezone

from juggernaut.engine.models import EngineState, Status, Task, Worker
from juggernaut.engine.services.common import NO_CAPABLE_WORKER
from juggernaut.models import Event
from selfheal import services

pytestmark = pytest.mark.django_db(transaction=True)


def codes(check: str) -> list[str]:
    return [f["title"] for f in services.checks_run([check])["findings"]]


def test_it_requeues_a_failed_task_under_its_retry_limit_and_verifies():
    task = Task.objects.create(title="t", kind="noop", status=Status.FAILED, attempts=1, max_attempts=3)
    assert any("under their retry limit" in t for t in codes("queue"))
    dry = services.repair_run(actions=["requeue_failed"], dry_run=True)
    task.refresh_from_db()
    assert task.status == Status.FAILED, "a dry run changes nothing"
    assert f"task #{task.pk}: failed → pending" in str(dry.steps)
    ex = services.repair_run(actions=["requeue_failed"])
    task.refresh_from_db()
    assert task.status == Status.PENDING
    assert not ex.verification["fixed"], "a requeued task has yet to run: nothing is fixed yet"
    assert any("retry limit" in f["title"] for f in ex.verification["awaiting"])
    assert services.execution_outcome(ex)["state"] == "in_progress"
    Task.objects.filter(pk=task.pk).update(status=Status.DONE)  # it ran and succeeded
    assert services.execution_outcome(ex)["words"] == "fixed ✓"


def test_it_unblocks_a_task_once_a_capable_worker_is_alive():
    task = Task.objects.create(
        title="t",
        kind="noop",
        status=Status.BLOCKED,
        reason_code=NO_CAPABLE_WORKER,
        required_capabilities=["gpu"],
    )
    assert not any("capable worker now" in t for t in codes("queue")), "no capable worker yet: nothing to do"
    Worker.objects.create(name="gpu1", capabilities=["gpu"], last_heartbeat=timezone.now())
    assert any("capable worker now" in t for t in codes("queue"))
    ex = services.repair_run(actions=["reset_blocked"])
    task.refresh_from_db()
    assert task.status == Status.PENDING
    assert any("capable worker now" in f["title"] for f in ex.verification["awaiting"])
    assert services.execution_outcome(ex) == {
        "state": "in_progress",
        "words": "in progress",
        "reason": "1 of 1 task still to run",
    }


def test_it_resumes_an_engine_paused_too_long_but_not_a_fresh_pause(settings):
    settings.SELFHEAL_STALE_PAUSE_HOURS = 24
    state = EngineState.load()
    state.paused, state.paused_by, state.paused_at = True, "operator:bob", timezone.now() - timedelta(hours=1)
    state.save()
    assert not any("paused" in t for t in codes("queue")), "an hour-old pause is the operator's choice"
    EngineState.objects.filter(pk=state.pk).update(paused_at=timezone.now() - timedelta(hours=30))
    assert any("paused by operator:bob" in t for t in codes("queue"))
    ex = services.repair_run(actions=["clear_stale_pause"])
    assert EngineState.load().paused is False
    assert any("paused" in f["title"] for f in ex.verification["fixed"])


def test_it_prunes_an_event_backlog_past_retention(settings):
    settings.SELFHEAL_EVENT_BACKLOG = 5
    old = timezone.now() - timedelta(days=settings.EVENTS_RETENTION_DAYS + 1)
    Event.objects.bulk_create([Event(topic="selfheal-test", seq=i, type="x", ts=old) for i in range(1, 9)])
    assert any("event log holds" in t for t in codes("database"))
    ex = services.repair_run(actions=["prune_events"])
    assert not Event.objects.filter(topic="selfheal-test").exists()
    assert any("event log holds" in f["title"] for f in ex.verification["fixed"])


def test_the_rows_per_hour_breaker_caps_what_repairs_touch(settings):
    settings.SELFHEAL_MAX_ROWS_PER_HOUR = 3
    Task.objects.bulk_create(
        [Task(title=f"t{i}", kind="noop", status=Status.FAILED, attempts=1, max_attempts=3) for i in range(5)]
    )
    services.repair_run(actions=["requeue_failed"])
    assert Task.objects.filter(status=Status.PENDING).count() == 3, (
        "three rows, then the hour's budget is spent"
    )
    services.repair_run(actions=["requeue_failed"])
    assert Task.objects.filter(status=Status.PENDING).count() == 3, "nothing more within the hour"
