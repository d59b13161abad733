"""A repair is "fixed" only when what it aimed at is seen: a task it handed back that fails again
makes it "did not help", with the error, and a permanent failure is never requeued."""

from datetime import timedelta

import pytest
from django.utils import timezone

from juggernaut.engine import handlers
from juggernaut.engine import services as engine
from juggernaut.engine.handlers import PermanentError
from juggernaut.engine.models import Status, Task, Worker
from juggernaut.engine.worker import WorkerLoop
from selfheal import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def denied_upload():
    """A handler that can never succeed: the bucket refuses every upload."""

    def upload(ctx):
        raise PermanentError("S3 AccessDenied: s3://reports/weekly.csv")

    handlers.register("upload_report", upload)
    yield
    handlers.unregister("upload_report")


def run_worker_after_backoff() -> None:
    """The released task's backoff has passed; a worker runs what is due and stops when idle."""
    Task.objects.filter(status=Status.PENDING).update(next_attempt_at=None)
    WorkerLoop("builtin", capabilities=[], poll_seconds=0.1).run(exit_when_idle=True)


def stranded_task() -> Task:
    """An upload whose worker died holding it: running, its lease long expired."""
    task = engine.task_create(title="Upload the weekly report", kind="upload_report", actor="operator:alice")
    dead = Worker.objects.create(name="gone", last_heartbeat=timezone.now() - timedelta(hours=1))
    Task.objects.filter(pk=task.pk).update(
        status=Status.RUNNING,
        lease_owner=dead,
        lease_incarnation=dead.incarnation,
        lease_expires_at=timezone.now() - timedelta(minutes=5),
        attempts=1,
    )
    return task


def test_it_says_did_not_help_when_the_repaired_task_fails_again(denied_upload, alice_client):
    task = stranded_task()
    repair = services.repair_run(actions=["release_expired_leases"], actor="operator:alice")
    assert services.execution_outcome(repair)["state"] == "in_progress"
    page = alice_client.get("/selfheal/").content.decode()
    assert "in progress" in page and "fixed ✓" not in page

    run_worker_after_backoff()
    task.refresh_from_db()
    assert task.status == Status.FAILED, "the upload failed again, permanently"

    outcome = services.execution_outcome(repair)
    assert outcome["state"] == "did_not_help"
    assert f"task #{task.pk} failed again: S3 AccessDenied" in outcome["reason"]
    page = alice_client.get("/selfheal/").content.decode()
    assert "did not help" in page and "S3 AccessDenied" in page and "fixed ✓" not in page
    assert "by alice" in page and "operator:alice" not in page, "people by name, not by actor id"


def test_it_never_requeues_a_permanent_failure_and_names_it_a_manual_finding(denied_upload, alice_client):
    task = stranded_task()
    services.repair_run(actions=["release_expired_leases"])
    run_worker_after_backoff()

    report = services.checks_run(["queue"])
    mine = [f for f in report["findings"] if f["evidence"].get("task") == task.pk]
    assert len(mine) == 1 and "failed permanently: S3 AccessDenied" in mine[0]["title"]
    assert mine[0]["action"]["kind"] == "manual" and mine[0]["action"]["name"] == f"/engine/tasks/{task.pk}/"
    assert not any(f["action"] and f["action"]["name"] == "requeue_failed" for f in report["findings"])

    preview = alice_client.post("/selfheal/repair/requeue_failed/preview/", headers={"HX-Request": "true"})
    text = preview.content.decode()
    assert f"task #{task.pk}: left as it is: it failed permanently: S3 AccessDenied" in text
    assert "requeueing cannot help" in text

    repair = services.repair_run(actions=["requeue_failed"])
    task.refresh_from_db()
    assert task.status == Status.FAILED, "left as it was"
    assert services.execution_outcome(repair)["state"] == "did_not_help"
    page = alice_client.get("/selfheal/").content.decode()
    assert f'href="/engine/tasks/{task.pk}/"' in page, "the manual fix is a link, not a Copy button"


def test_it_refuses_a_task_that_failed_the_same_way_on_every_attempt():
    task = engine.task_create(title="Sync", kind="noop", actor="operator:alice")
    Task.objects.filter(pk=task.pk).update(
        status=Status.FAILED, attempts=2, max_attempts=5, last_error="timeout talking to 10.0.0.7:5432"
    )
    for n, host in ((1, "10.0.0.7"), (2, "10.0.0.9")):
        task.events.create(
            from_status=Status.RUNNING,
            to_status=Status.PENDING,
            actor="worker:w1",
            reason=f"Attempt {n} of 5 failed (timeout talking to {host}:5432); next attempt in 5 s.",
        )
    titles = [f["title"] for f in services.checks_run(["queue"])["findings"]]
    assert any("all 2 attempts failed with the same error" in t for t in titles), titles
    assert not any("under their retry limit" in t for t in titles)


def test_the_feed_says_each_run_once_in_words_with_a_link(denied_upload, alice_client):
    stranded_task()
    services.diagnose_run(actor="operator:alice")
    repair = services.repair_run(actions=["release_expired_leases"], actor="operator:alice")
    page = alice_client.get("/").content.decode()
    feed = page[page.index('id="hq-activity"') :]
    assert "Step:" not in feed and "Repair started" not in feed and "Diagnose started" not in feed
    assert f"Repair #{repair.pk} in progress: 1 of 1 task still to run." in feed
    assert f'href="/selfheal/#selfheal-exec-{repair.pk}"' in feed
