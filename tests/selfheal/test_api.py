"""The /api/self-heal/ API: shapes, scopes, bad input in the one error shape."""

from datetime import timedelta

import pytest
from django.utils import timezone

from juggernaut.engine.models import Status, Task, Worker
from selfheal import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quiet_externals(settings):
    settings.OPENROUTER_API_KEY = ""


def expired_lease() -> Task:
    w = Worker.objects.create(name="w1", last_heartbeat=timezone.now())
    return Task.objects.create(
        title="t",
        kind="noop",
        status=Status.RUNNING,
        lease_owner=w,
        lease_incarnation=w.incarnation,
        attempts=1,
        lease_expires_at=timezone.now() - timedelta(minutes=5),
    )


def test_it_diagnoses_with_the_report_inline(client, bearer):
    expired_lease()
    r = client.post("/api/self-heal/diagnose", **bearer("write"))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "status", "duration_ms", "findings", "checks"}
    f = next(f for f in body["findings"] if f["check"] == "queue")
    assert set(f) == {"check", "severity", "title", "evidence", "action"}
    assert f["action"]["kind"] == "safe"
    assert {c["name"] for c in body["checks"]} >= {
        "workers",
        "queue",
        "jobs",
        "errors",
        "database",
        "budgets",
    }
    assert all(set(c) == {"name", "status", "duration_ms"} for c in body["checks"])
    listed = client.get("/api/self-heal/executions", **bearer("read"))
    assert listed.status_code == 200
    steps = listed.json()[0]["steps"]
    assert {s["name"] for s in steps} == {c["name"] for c in body["checks"]}
    assert all(s["touched"] == 0 and s["duration_ms"] is not None for s in steps)
    one = client.get(f"/api/self-heal/executions/{body['id']}", **bearer("read")).json()
    assert one["kind"] == "diagnose" and one["steps"] == steps


def test_it_repairs_dry_run_first_then_for_real(client, bearer):
    task = expired_lease()
    dry = client.post(
        "/api/self-heal/repair",
        {"actions": ["release_expired_leases"], "dry_run": True},
        content_type="application/json",
        **bearer("write"),
    ).json()
    assert dry["steps"][0]["status"] == "dry_run" and dry["steps"][0]["touched"] == 1
    task.refresh_from_db()
    assert task.status == Status.RUNNING
    real = client.post("/api/self-heal/repair", {}, content_type="application/json", **bearer("write")).json()
    assert set(real) == {"id", "kind", "status", "dry_run", "steps", "verification", "outcome"}
    assert real["status"] == "succeeded"
    awaiting = {f["title"] for f in real["verification"]["awaiting"]}
    assert "1 running task(s) hold an expired lease." in awaiting
    assert real["outcome"]["state"] == "in_progress", "the released task has not run yet"
    assert {s["name"] for s in real["steps"]} >= {"release_expired_leases", "restart_schedules"}
    listed = client.get("/api/self-heal/executions", **bearer("read")).json()
    assert [e["id"] for e in listed][:2] == [real["id"], dry["id"]]
    one = client.get(f"/api/self-heal/executions/{real['id']}", **bearer("read")).json()
    assert one == real


def test_it_refuses_without_the_scope_and_bad_input(client, bearer):
    assert client.post("/api/self-heal/diagnose", **bearer("read")).status_code == 403
    assert client.post("/api/self-heal/diagnose").status_code == 401
    r = client.post(
        "/api/self-heal/repair",
        {"actions": ["drop_tables"]},
        content_type="application/json",
        **bearer("write"),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_action"
    r = client.post(
        "/api/self-heal/repair", {"dry_run": "maybe"}, content_type="application/json", **bearer("write")
    )
    assert r.status_code == 422 and "error" in r.json()
    r = client.get("/api/self-heal/executions/999999", **bearer("read"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/api/self-heal/executions/abc", **bearer("read")).status_code == 422


def test_auto_heal_stops_when_a_breaker_opens(client, bearer, settings):
    settings.SELFHEAL_MAX_RUNS_PER_HOUR = 2
    expired_lease()
    first = services.auto_heal_run()  # the schedule's runs
    assert first.kind == "auto_heal" and first.status == "succeeded", first.steps
    services.auto_heal_run()
    third = client.post("/api/self-heal/auto-heal", **bearer("write")).json()
    assert third["status"] == "failed"
    assert (
        third["steps"][0]["name"] == "circuit_breaker"
        and "2 scheduled auto-heal runs" in third["steps"][0]["output"]
    )


def test_auto_heal_stops_after_a_repair_that_did_not_verify(client, bearer):
    from juggernaut import healing
    from selfheal.models import Playbook

    healing.ACTIONS["stubborn"] = healing.SafeAction(
        "stubborn", lambda **kw: healing.Outcome(0, "cannot", fixed=False), "no", "nothing", 1, True, True
    )
    healing.CHECKS["stubborn_check"] = healing.Check(
        "stubborn_check",
        lambda now: [
            healing.Finding("stubborn_check", "warning", "always", action=healing.Fix.safe("stubborn", "try"))
        ],
        "x",
    )
    Playbook.objects.create(name="stubborn", auto_run=True, steps=[{"name": "stubborn", "params": {}}])
    Playbook.objects.filter(name="DiagnoseSystem").delete()
    try:
        first = client.post("/api/self-heal/auto-heal", **bearer("write")).json()
        second = client.post("/api/self-heal/auto-heal", **bearer("write")).json()
    finally:
        del healing.ACTIONS["stubborn"], healing.CHECKS["stubborn_check"]
    assert first["status"] == "failed" and first["steps"][0]["status"] == "not_fixed"
    assert (
        second["steps"][0]["name"] == "circuit_breaker" and "did not verify" in second["steps"][0]["output"]
    )


def test_the_page_diagnoses_and_shows_the_overview_line(alice_client):
    expired_lease()
    page = alice_client.get("/selfheal/")
    assert page.status_code == 200 and b"Diagnose" in page.content
    r = alice_client.post("/selfheal/diagnose/", headers={"HX-Request": "true"})
    assert b"expired lease" in r.content and b"Release expired leases" in r.content
    preview = alice_client.post(
        "/selfheal/repair/release_expired_leases/preview/", headers={"HX-Request": "true"}
    )
    assert b"it would release 1 task(s)" in preview.content
    assert b"running \xe2\x86\x92 pending: its worker stopped answering" in preview.content
    overview = alice_client.get("/")
    assert b"Last diagnosis" in overview.content
    bad = alice_client.post("/selfheal/repair/nope/preview/", headers={"HX-Request": "true"})
    assert bad.status_code == 200 and b"Refused" in bad.content
