"""A worker belongs to whoever registered it, and claims only the task kinds it declared."""

import json
import uuid

import pytest

from juggernaut.engine import services
from juggernaut.engine.models import Status, Task, Worker
from juggernaut.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db


def post(client, path: str, body=None, **headers):
    return client.post(
        f"/api/engine{path}", json.dumps(body or {}), content_type="application/json", **headers
    )


def register(client, headers, name: str, **extra) -> dict:
    answer = post(client, "/workers", {"name": name, **extra}, **headers)
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_it_refuses_a_worker_token_taking_over_the_builtin_worker(client, bearer):
    builtin = services.worker_register("builtin", capabilities=[])  # as `manage.py engine_worker` does
    refused = post(client, "/workers", {"name": "builtin"}, **bearer("worker"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "name_taken"
    builtin.refresh_from_db()
    assert Worker.objects.get(name="builtin").incarnation == builtin.incarnation  # still alive, untouched


def test_it_gives_the_incarnation_only_to_the_registering_caller(client, bearer):
    mine = bearer("worker")
    registered = register(client, mine, "ext-1")
    assert uuid.UUID(registered["incarnation"])
    services.worker_register("builtin", capabilities=[])
    listed = client.get("/api/engine/workers", **bearer("read"))
    assert listed.status_code == 200 and len(listed.json()) == 2
    assert "incarnation" not in listed.content.decode()
    beat = post(
        client, f"/workers/{registered['id']}/heartbeat", {"incarnation": registered["incarnation"]}, **mine
    )
    assert beat.status_code == 200 and "incarnation" not in beat.content.decode()
    assert {w["owner"] for w in listed.json()} == {"builtin", f"token:{_token_id(mine)}"}


def _token_id(headers: dict) -> int:
    return ApiToken.objects.get(key_hash=hash_token(headers["HTTP_AUTHORIZATION"][7:])).pk


def test_it_refuses_every_report_from_a_token_that_does_not_own_the_worker(client, bearer):
    owner, stranger = bearer("worker"), bearer("worker", "read")
    worker = register(client, owner, "ext-owned")
    task = services.task_create("secret work", kind="noop")
    claimed = post(client, "/claim", {"worker": worker["id"], "incarnation": worker["incarnation"]}, **owner)
    assert [t["id"] for t in claimed.json()] == [task.pk]
    # The stranger even knows the incarnation (it leaked elsewhere): still nothing it may do.
    fence = {"worker": worker["id"], "incarnation": worker["incarnation"]}
    for path, body in [
        (f"/tasks/{task.pk}/complete", {**fence, "result": {"made": "up"}}),
        (f"/tasks/{task.pk}/fail", {**fence, "error": "sabotage", "permanent": True}),
        (f"/tasks/{task.pk}/heartbeat", fence),
        (f"/tasks/{task.pk}/release", fence),
        ("/claim", fence),
        (f"/workers/{worker['id']}/heartbeat", {"incarnation": worker["incarnation"]}),
        (f"/workers/{worker['id']}/stop", {"incarnation": worker["incarnation"]}),
    ]:
        refused = post(client, path, body, **stranger)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_owner", path
    task.refresh_from_db()
    assert task.status == Status.RUNNING and task.result is None
    assert Worker.objects.get(pk=worker["id"]).stopped_at is None
    done = post(client, f"/tasks/{task.pk}/complete", {**fence, "result": {"ok": True}}, **owner)
    assert done.status_code == 200 and done.json()["status"] == "done"


def test_it_lets_only_an_admin_take_a_name_over(client, bearer, make_token, admin_user):
    first = register(client, bearer("worker"), "shared-name")
    refused = post(client, "/workers", {"name": "shared-name", "takeover": True}, **bearer("worker"))
    assert refused.status_code == 403
    admin = {"HTTP_AUTHORIZATION": f"Bearer {make_token('admin', user=admin_user)}"}
    taken = register(client, admin, "shared-name", takeover=True)
    assert taken["id"] == first["id"] and taken["incarnation"] != first["incarnation"]
    assert taken["owner"] != first["owner"]


def test_it_lets_an_operator_or_an_admin_stop_any_worker(client, alice_client, bearer):
    worker = register(client, bearer("worker"), "ext-a")
    stopped = alice_client.post(f"/api/engine/workers/{worker['id']}/stop", content_type="application/json")
    assert stopped.status_code == 200 and stopped.json()["stopped_at"]
    again = register(client, bearer("worker"), "ext-b")
    by_admin = post(client, f"/workers/{again['id']}/stop", {}, **bearer("admin"))
    assert by_admin.status_code == 200 and by_admin.json()["stopped_at"]


def test_it_claims_only_the_kinds_a_worker_declared(client, bearer):
    headers = bearer("worker")
    gpu_worker = register(client, headers, "render", kinds=["render"], capabilities=["gpu"])
    other = services.task_create("something else", kind="noop", required_capabilities=["gpu"])
    mine = services.task_create("render it", kind="render", required_capabilities=["gpu"])
    fence = {"worker": gpu_worker["id"], "incarnation": gpu_worker["incarnation"], "limit": 5}
    claimed = post(client, "/claim", fence, **headers).json()
    assert [t["id"] for t in claimed] == [mine.pk]
    other.refresh_from_db()
    assert other.status == Status.PENDING
    anything = register(client, headers, "any", kinds=["*"], capabilities=["gpu"])
    took = post(
        client, "/claim", {"worker": anything["id"], "incarnation": anything["incarnation"]}, **headers
    )
    assert [t["id"] for t in took.json()] == [other.pk]
    bad = post(client, "/workers", {"name": "x", "kinds": ["Not A Kind"]}, **headers)
    assert bad.status_code == 422


@pytest.mark.process  # starts manage.py engine_worker
@pytest.mark.django_db(transaction=True)
def test_it_leaves_kinds_without_a_handler_to_other_workers_and_says_so(client, bearer, start_worker):
    """`engine_worker --capabilities gpu,frobnicate` has no frobnicate handler: it must not claim (and
    fail, and escalate) such a task; the task is blocked with that reason until a worker runs the kind."""
    task = services.task_create("frob", kind="frobnicate", required_capabilities=["frobnicate"])
    done = services.task_create("noop", kind="noop")
    proc = start_worker(
        "--name", "builtin", "--capabilities", "gpu,frobnicate", "--poll", "0.2", "--exit-when-idle"
    )
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert Task.objects.get(pk=done.pk).status == Status.DONE  # it did run what it has a handler for
    task.refresh_from_db()
    assert task.status == Status.PENDING and task.attempts == 0 and task.last_error == ""
    assert "frobnicate" not in Worker.objects.get(name="builtin").kinds

    services.worker_register("builtin", capabilities=["gpu", "frobnicate"], kinds=["noop"])  # alive again
    services.engine_tick()
    task.refresh_from_db()
    assert task.status == Status.BLOCKED
    assert task.reason == "No live worker runs tasks of kind frobnicate."
    assert "handler for frobnicate" in task.unblock_action
    # An external worker that declares the kind arrives: the task goes back to the queue, for it.
    headers = bearer("worker")
    frob = register(client, headers, "frob-worker", kinds=["frobnicate"], capabilities=["frobnicate"])
    task.refresh_from_db()
    assert task.status == Status.PENDING
    claimed = post(client, "/claim", {"worker": frob["id"], "incarnation": frob["incarnation"]}, **headers)
    assert [t["id"] for t in claimed.json()] == [task.pk]


def test_it_refuses_a_staff_operators_takeover_of_the_builtin_worker_by_every_path(
    client, alice_client, bearer
):
    builtin = services.worker_register("builtin", capabilities=[])  # as `manage.py engine_worker` does
    body = {"name": "builtin", "takeover": True}
    # An admin-scope token an operator held from before admin tokens became an admin's alone.
    by_token = post(client, "/workers", body, **bearer("admin"))
    by_session = alice_client.post("/api/engine/workers", body, content_type="application/json")
    for refused in (by_token, by_session):
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    # Nor can alice mint herself an admin token, through the API or the settings page.
    minted = alice_client.post(
        "/api/tokens", {"name": "root", "scopes": ["admin"]}, content_type="application/json"
    )
    assert minted.status_code == 403 and minted.json()["error"]["code"] == "forbidden"
    page = alice_client.post("/settings/tokens/", {"name": "root", "scopes": ["admin", "worker"]})
    assert page.status_code == 302
    assert not ApiToken.objects.filter(name="root").exists()
    assert 'value="admin"' not in alice_client.get("/settings/").content.decode()
    assert Worker.objects.get(name="builtin").incarnation == builtin.incarnation
