"""What each engine operation answers: every field of the task or worker, as the database holds it."""

import json

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from juggernaut.engine.models import Task, Worker
from tests.engine.test_api import post

pytestmark = pytest.mark.django_db


# The answer of every operation, field by field, in the schema's order. Each value is what the
# database holds afterwards (datetimes as the API writes them), so an operation that answers from a
# stale or half-built object fails here.
TASK_KEYS = [
    "id",
    "title",
    "kind",
    "payload",
    "priority",
    "status",
    "required_capabilities",
    "source",
    "dedupe_key",
    "reason_code",
    "reason",
    "unblock_action",
    "needs_approval",
    "approved_by",
    "acknowledged_by",
    "acknowledged_at",
    "attempts",
    "max_attempts",
    "next_attempt_at",
    "timeout_seconds",
    "lease_owner",
    "lease_expires_at",
    "depends_on",
    "last_error",
    "result",
    "origin",
    "created_by",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
]
WORKER_KEYS = [
    "id",
    "name",
    "owner",
    "kinds",
    "capabilities",
    "concurrency",
    "last_heartbeat",
    "started_at",
    "stopped_at",
    "live",
]


def as_json(value):
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def stored_task(task_id: int) -> dict:
    task = Task.objects.get(pk=task_id)
    computed = {
        "lease_owner": task.lease_owner.name if task.lease_owner else None,
        "depends_on": task.depends_on_id,
    }
    return as_json({k: computed[k] if k in computed else getattr(task, k) for k in TASK_KEYS})


def stored_worker(worker_id: int) -> dict:
    worker = Worker.objects.get(pk=worker_id)
    return as_json({k: worker.is_live() if k == "live" else getattr(worker, k) for k in WORKER_KEYS})


def assert_task(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert list(body) == TASK_KEYS and body == stored_task(body["id"])
    return body


def test_it_answers_each_operation_with_the_task_and_worker_as_stored(client, bearer):
    worker_headers, steer = bearer("worker"), bearer("write", "read")
    registered = post(client, "/workers", {"name": "ext", "capabilities": ["git"]}, **worker_headers)
    worker = registered.json()
    assert registered.status_code == 201 and list(worker) == [*WORKER_KEYS, "incarnation"]
    assert {k: v for k, v in worker.items() if k != "incarnation"} == stored_worker(worker["id"])
    assert worker["incarnation"] == str(Worker.objects.get(pk=worker["id"]).incarnation)
    fence = {"worker": worker["id"], "incarnation": worker["incarnation"]}
    beat = post(
        client, f"/workers/{worker['id']}/heartbeat", {"incarnation": worker["incarnation"]}, **worker_headers
    )
    assert beat.json() == {"worker": stored_worker(worker["id"]), "paused": False}
    assert client.get("/api/engine/workers", **steer).json() == [stored_worker(worker["id"])]

    first = assert_task(
        post(
            client,
            "/tasks",
            {
                "title": "push",
                "kind": "noop",
                "payload": {"ref": "main"},
                "required_capabilities": ["git"],
                "dedupe_key": "push-main",
            },
            **steer,
        ),
        201,
    )
    again = post(client, "/tasks", {"title": "again", "kind": "noop", "dedupe_key": "push-main"}, **steer)
    assert assert_task(again)["id"] == first["id"]
    second = assert_task(
        post(
            client,
            "/tasks",
            {
                "title": "after",
                "kind": "noop",
                "depends_on": first["id"],
                "needs_approval": True,
                "required_capabilities": ["git"],
            },
            **steer,
        ),
        201,
    )
    assert second["depends_on"] == first["id"] and second["status"] == "waiting_approval"
    assert_task(post(client, f"/tasks/{second['id']}/approve", **steer))
    patched = client.patch(
        f"/api/engine/tasks/{second['id']}",
        json.dumps({"priority": 5}),
        content_type="application/json",
        **steer,
    )
    assert assert_task(patched)["priority"] == 5

    [claimed] = post(client, "/claim", {**fence, "limit": 5}, **worker_headers).json()
    assert claimed == stored_task(first["id"]) and claimed["lease_owner"] == "ext"
    done = assert_task(
        post(client, f"/tasks/{first['id']}/complete", {**fence, "result": {"sha": "abc"}}, **worker_headers)
    )
    assert done["status"] == "done" and done["result"] == {"sha": "abc"}

    post(client, "/claim", fence, **worker_headers)
    released = assert_task(post(client, f"/tasks/{second['id']}/release", fence, **worker_headers))
    assert released["status"] == "pending" and released["lease_owner"] is None
    post(client, "/claim", fence, **worker_headers)
    retrying = assert_task(
        post(client, f"/tasks/{second['id']}/fail", {**fence, "error": "flaky"}, **worker_headers)
    )
    assert (
        retrying["status"] == "pending" and retrying["next_attempt_at"] and retrying["last_error"] == "flaky"
    )
    Task.objects.filter(pk=second["id"]).update(next_attempt_at=None)
    post(client, "/claim", fence, **worker_headers)
    failed = post(
        client, f"/tasks/{second['id']}/fail", {**fence, "error": "bad", "permanent": True}, **worker_headers
    )
    assert assert_task(failed)["status"] == "failed"
    assert assert_task(post(client, f"/tasks/{second['id']}/acknowledge", **steer))["acknowledged_by"]
    assert assert_task(post(client, f"/tasks/{second['id']}/retry", **steer))["status"] == "pending"
    assert_task(post(client, f"/tasks/{second['id']}/reassign", {"worker_name": "ext"}, **steer))
    assert assert_task(post(client, f"/tasks/{second['id']}/cancel", {"reason": "not needed"}, **steer))[
        "status"
    ] == ("cancelled")

    page = client.get("/api/engine/tasks", **steer).json()
    assert page == {"items": [stored_task(second["id"]), stored_task(first["id"])], "count": 2}
    detail = client.get(f"/api/engine/tasks/{second['id']}", **steer).json()
    history = Task.objects.get(pk=second["id"]).events.values(
        "from_status", "to_status", "actor", "reason", "at"
    )
    assert detail == {**stored_task(second["id"]), "events": as_json(list(history))}
    stopped = post(
        client, f"/workers/{worker['id']}/stop", {"incarnation": worker["incarnation"]}, **worker_headers
    )
    assert stopped.json() == stored_worker(worker["id"]) and stopped.json()["stopped_at"]
