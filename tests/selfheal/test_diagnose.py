"""Each check finds its injected fault and is quiet on a healthy system; a hanging check times out alone."""

import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q.models import Schedule

from juggernaut import healing, schedules
from juggernaut.engine.models import Status, Task, Worker
from routing.models import Budget, CostTracking, period_start
from selfheal import services
from selfheal.models import Playbook, steps_validate
from tests.fakes.openrouter import FakeOpenRouter

pytestmark = pytest.mark.django_db(transaction=True)


def run(*names):
    report = services.checks_run(list(names))
    return report["findings"], {c["name"]: c["status"] for c in report["checks"]}


def titles(findings):
    return [f["title"] for f in findings]


def live_worker(name="w1", **kw):
    return Worker.objects.create(name=name, last_heartbeat=timezone.now(), **kw)


def test_it_is_quiet_on_a_healthy_system(settings):
    settings.OPENROUTER_API_KEY = ""
    live_worker()
    Task.objects.create(title="t", kind="noop")
    schedules.schedules_sync()
    findings, statuses = run("workers", "queue", "jobs", "budgets", "errors")
    assert findings == []
    assert set(statuses.values()) == {"ok"}


def test_it_finds_a_dead_worker():
    Worker.objects.create(name="ghost", last_heartbeat=timezone.now() - timedelta(hours=1))
    findings, _ = run("workers")
    assert any("ghost is silent" in t for t in titles(findings))


def test_it_finds_an_expired_lease_and_repairs_it():
    w = live_worker()
    t = Task.objects.create(
        title="t",
        kind="noop",
        status=Status.RUNNING,
        lease_owner=w,
        lease_incarnation=w.incarnation,
        lease_expires_at=timezone.now() - timedelta(minutes=5),
        attempts=1,
    )
    findings, _ = run("queue")
    assert findings[0]["severity"] == "critical"
    assert findings[0]["action"] == {
        "kind": "safe",
        "name": "release_expired_leases",
        "description": findings[0]["action"]["description"],
    }
    ex = services.repair_run(actions=["release_expired_leases"])
    t.refresh_from_db()
    assert t.status == Status.PENDING
    assert ex.status == "succeeded"
    assert [f["title"] for f in ex.verification["awaiting"]] == [findings[0]["title"]]
    assert services.execution_outcome(ex)["state"] == "in_progress", "released, not yet run again"


def test_it_finds_no_capable_worker():
    live_worker(capabilities=["python"])
    Task.objects.create(title="t", kind="noop", required_capabilities=["gpu"])
    findings, _ = run("workers")
    assert any("no capable worker" in t for t in titles(findings))


def test_it_finds_a_stopped_jobs_cluster():
    schedules.schedules_sync()
    Schedule.objects.filter(name="hq:engine-tick").update(next_run=timezone.now() - timedelta(minutes=30))
    findings, _ = run("jobs")
    assert findings[0]["severity"] == "critical"
    assert findings[0]["action"]["name"] == "manage.py qcluster"


def test_it_restarts_a_stopped_schedule_and_verifies():
    schedules.schedules_sync()
    Schedule.objects.filter(name="hq:engine-tick").update(repeats=0)
    assert "stopped" in run("jobs")[0][0]["title"]
    ex = services.repair_run(actions=["restart_schedules"])
    assert ex.status == "succeeded", ex.steps
    assert Schedule.objects.get(name="hq:engine-tick").repeats == -1


def test_it_finds_an_unreachable_api_and_an_invalid_key(settings):
    settings.OPENROUTER_BASE_URL = "http://127.0.0.1:9/api/v1"
    settings.OPENROUTER_API_KEY = "sk-or-test"
    assert "unreachable" in run("openrouter")[0][0]["title"]
    with FakeOpenRouter() as fake:
        settings.OPENROUTER_BASE_URL = fake.url
        settings.OPENROUTER_API_KEY = "sk-wrong"
        assert "invalid" in run("openrouter")[0][0]["title"]
        settings.OPENROUTER_API_KEY = fake.api_key
        assert run("openrouter")[0] == []


def test_it_finds_an_exhausted_budget():
    now = timezone.now()
    Budget.objects.create(scope="global", period="day", limit_usd=1)
    CostTracking.objects.create(period="day", period_start=period_start("day", now), cost_usd=2)
    findings, _ = run("budgets")
    assert findings[0]["severity"] == "critical"


def test_a_hanging_check_times_out_without_delaying_the_rest(settings):
    settings.SELFHEAL_CHECK_TIMEOUT_SECONDS = 0.5
    healing.CHECKS["hang"] = healing.Check("hang", lambda now: time.sleep(3) or [], "hangs")
    try:
        started = time.monotonic()
        _, statuses = run("hang", "workers", "queue")
        took = time.monotonic() - started
    finally:
        del healing.CHECKS["hang"]
    assert statuses == {"hang": "timeout", "workers": "ok", "queue": "ok"}
    assert took < 2


def test_a_repair_that_cannot_fix_says_so():
    healing.ACTIONS["stubborn"] = healing.SafeAction(
        "stubborn",
        lambda **kw: healing.Outcome(0, "cannot fix it", fixed=False),
        "no",
        "nothing",
        1,
        True,
        False,
    )
    try:
        ex = services.repair_run(actions=["stubborn"])
    finally:
        del healing.ACTIONS["stubborn"]
    assert ex.status == "failed"
    assert ex.steps[0]["status"] == "not_fixed"


def test_playbook_validation_refuses_eleven_steps_and_unknown_names():
    with pytest.raises(ValidationError, match="at most 10"):
        steps_validate([{"name": "queue"}] * 11)
    with pytest.raises(ValidationError, match="'rm_rf' is not a registered"):
        steps_validate([{"name": "rm_rf"}])
    book = Playbook(name="x", steps=[{"name": "bogus"}])
    with pytest.raises(ValidationError):
        book.full_clean()
