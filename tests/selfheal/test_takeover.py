"""A diagnosis or repair whose process died mid-way is closed as failed within its lease, saying so,
instead of showing ``running`` forever; one that is alive keeps its run."""

from datetime import timedelta

import pytest

from juggernaut.models import Event
from selfheal import services, tasks
from selfheal.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def _killed_mid_repair(monkeypatch) -> Execution:
    """A repair whose process stops dead after its first diagnosis, as a kill -9 would leave it."""

    def killed(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(services, "checks_run", killed)
    with pytest.raises(SystemExit):
        services.repair_run(actions=["requeue_failed"])
    monkeypatch.undo()
    return Execution.objects.get(status="running")


def test_it_closes_a_repair_whose_process_died_once_its_lease_runs_out(monkeypatch, settings):
    settings.SELFHEAL_LEASE_SECONDS = 45
    dead = _killed_mid_repair(monkeypatch)
    beat = dead.heartbeat_at
    assert services.executions_take_over(now=beat + timedelta(seconds=30)) == []  # it may still be alive
    assert services.executions_take_over(now=beat + timedelta(seconds=46)) == [dead.pk]
    assert services.executions_take_over(now=beat + timedelta(seconds=300)) == []  # closed once
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.finished_at == beat + timedelta(seconds=46)
    (step,) = dead.steps
    assert step["name"] == "interrupted"
    assert step["output"].startswith("its process stopped sending heartbeats 46 s ago")
    finished = Event.objects.filter(topic="selfheal", type="repair_finished").get()
    assert finished.data["id"] == dead.pk and finished.data["status"] == "failed"


def test_the_next_run_and_the_sweep_take_over_a_dead_one(monkeypatch, settings):
    settings.SELFHEAL_LEASE_SECONDS = 45
    dead = _killed_mid_repair(monkeypatch)
    Execution.objects.filter(pk=dead.pk).update(heartbeat_at=dead.heartbeat_at - timedelta(seconds=60))
    diagnosis = services.diagnose_run()
    assert diagnosis.status == "succeeded"
    assert Execution.objects.get(pk=dead.pk).status == "failed"
    assert tasks.executions_sweep() == 0  # nothing left running


def test_a_run_taken_over_keeps_its_verdict(monkeypatch):
    real = services.checks_run

    def slow_then_taken_over(*args, **kwargs):
        report = real(*args, **kwargs)
        # Judged dead meanwhile (a step slower than the lease): another process closed it.
        Execution.objects.filter(status="running").update(status="failed", steps=[{"name": "interrupted"}])
        return report

    monkeypatch.setattr(services, "checks_run", slow_then_taken_over)
    execution = services.diagnose_run()
    assert (execution.status, execution.steps) == ("failed", [{"name": "interrupted"}])
    assert not Event.objects.filter(topic="selfheal", type="diagnose_finished").exists()
