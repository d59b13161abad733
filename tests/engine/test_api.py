"""The engine's JSON API: scopes, the claim protocol over HTTP, and errors in the one shape."""

import json

import pytest

from juggernaut.engine import services
from juggernaut.engine.models import Status, Task, Worker


def post(client, path: str, body=None, **headers):
    data = body if isinstance(body, str) else json.dumps(body or {})
    return client.post(f"/api/engine{path}", data=data, content_type="application/json", **headers)


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code:
        assert error["code"] == code
    return error


@pytest.fixture
def worker_headers(bearer):
    return bearer("worker")


def register_over_http(client, headers, name: str = "ext", **extra) -> Worker:
    """Register as an external worker does: the worker then belongs to the caller's token."""
    answer = post(client, "/workers", {"name": name, **extra}, **headers)
    assert answer.status_code == 201, answer.content
    return Worker.objects.get(pk=answer.json()["id"])


def test_it_runs_the_claim_protocol_over_http(client, worker_headers):
    registered = post(client, "/workers", {"name": "ext-1", "capabilities": ["git"]}, **worker_headers)
    assert registered.status_code == 201
    worker = registered.json()
    assert worker["name"] == "ext-1" and worker["capabilities"] == ["git"] and worker["incarnation"]
    task = services.task_create("push", kind="noop", required_capabilities=["git"])

    claimed = post(
        client,
        "/claim",
        {"worker": worker["id"], "incarnation": worker["incarnation"], "limit": 5},
        **worker_headers,
    )
    assert claimed.status_code == 200
    [item] = claimed.json()
    assert item["id"] == task.pk and item["status"] == "running" and item["lease_expires_at"]

    fence = {"worker": worker["id"], "incarnation": worker["incarnation"]}
    assert post(client, f"/tasks/{task.pk}/heartbeat", fence, **worker_headers).status_code == 200
    done = post(client, f"/tasks/{task.pk}/complete", {**fence, "result": {"sha": "abc"}}, **worker_headers)
    assert done.status_code == 200
    assert done.json()["status"] == "done" and done.json()["result"] == {"sha": "abc"}


def test_it_reports_a_failure_with_backoff(client, worker_headers):
    worker = register_over_http(client, worker_headers)
    task = services.task_create("flaky", kind="noop")
    services.task_claim(worker, incarnation=worker.incarnation)

    failed = post(
        client,
        f"/tasks/{task.pk}/fail",
        {"worker": worker.pk, "incarnation": str(worker.incarnation), "error": "timeout talking to GitHub"},
        **worker_headers,
    )
    assert failed.status_code == 200
    body = failed.json()
    assert body["status"] == "pending" and body["attempts"] == 1 and body["next_attempt_at"]
    assert "timeout talking to GitHub" in body["last_error"]


def test_it_refuses_a_read_token_on_the_claim_protocol(client, bearer):
    worker = services.worker_register("ext", capabilities=[])
    response = post(
        client, "/claim", {"worker": worker.pk, "incarnation": str(worker.incarnation)}, **bearer("read")
    )
    assert_error(response, 403, "forbidden")


def test_it_lets_a_worker_token_claim_but_not_steer(client, worker_headers):
    worker = register_over_http(client, worker_headers)
    task = services.task_create("t", kind="noop")
    ok = post(
        client, "/claim", {"worker": worker.pk, "incarnation": str(worker.incarnation)}, **worker_headers
    )
    assert ok.status_code == 200 and ok.json()[0]["id"] == task.pk
    assert_error(post(client, "/pause", {}, **worker_headers), 403, "forbidden")


def test_it_answers_anonymous_callers_with_401(client):
    assert_error(client.get("/api/engine/tasks"), 401, "unauthorized")
    assert_error(post(client, "/claim", {"worker": 1, "incarnation": "x"}), 401)


def test_it_answers_unknown_ids_with_404(client, bearer):
    headers = bearer("admin")
    assert_error(client.get("/api/engine/tasks/999999", **headers), 404, "not_found")
    assert_error(post(client, "/tasks/999999/approve", {}, **headers), 404, "not_found")
    assert_error(
        post(
            client,
            "/workers/999999/heartbeat",
            {"incarnation": "6f1c1d3e-8d7a-4a55-9a3c-0a0b0c0d0e0f"},
            **headers,
        ),
        404,
    )
    assert_error(
        post(
            client,
            "/claim",
            {"worker": 999999, "incarnation": "6f1c1d3e-8d7a-4a55-9a3c-0a0b0c0d0e0f"},
            **headers,
        ),
        404,
    )


def test_it_answers_illegal_transitions_with_409(client, bearer):
    task = services.task_create("t", kind="noop")
    error = assert_error(
        post(client, f"/tasks/{task.pk}/approve", {}, **bearer("write")), 409, "illegal_transition"
    )
    assert "pending" in error["message"]
    task.refresh_from_db()
    assert task.status == Status.PENDING


def test_it_refuses_a_late_complete_with_409_and_changes_nothing(client, worker_headers):
    worker = register_over_http(client, worker_headers)
    task = services.task_create("t", kind="noop")
    services.task_claim(worker, incarnation=worker.incarnation)
    services.task_cancel(task.pk, actor="operator:alice")

    body = {"worker": worker.pk, "incarnation": str(worker.incarnation), "result": {"x": 1}}
    assert_error(post(client, f"/tasks/{task.pk}/complete", body, **worker_headers), 409, "lease_lost")
    task.refresh_from_db()
    assert task.status == Status.CANCELLED and task.result is None


@pytest.mark.parametrize(
    "path, body",
    [
        ("/tasks", {"kind": "noop"}),
        ("/tasks", {"title": "t", "kind": "noop", "priority": "high"}),
        ("/tasks", {"title": "t", "kind": "Not A Kind!"}),
        ("/tasks", {"title": "t", "kind": "noop", "payload": [1, 2]}),
        ("/tasks", {"title": "t", "kind": "noop", "required_capabilities": "gpu"}),
        ("/claim", {"worker": 1, "incarnation": "not-a-uuid"}),
        ("/claim", {"worker": 1, "incarnation": "6f1c1d3e-8d7a-4a55-9a3c-0a0b0c0d0e0f", "limit": 0}),
        ("/workers", {"name": "", "capabilities": []}),
        ("/workers", {"name": "w", "capabilities": ["bad cap"]}),
        ("/workers", "[]"),
    ],
)
def test_it_answers_malformed_bodies_with_422(client, bearer, path, body):
    before = Task.objects.count()
    assert_error(post(client, path, body, **bearer("admin")), 422)
    assert Task.objects.count() == before


def test_it_answers_unparseable_json_with_422(client, bearer):
    response = post(client, "/tasks", "{not json", **bearer("admin"))
    assert_error(response, 422)
    assert not Task.objects.exists()


def test_it_lists_tasks_by_status_with_a_count(client, bearer):
    for i in range(3):
        services.task_create(f"t{i}", kind="noop")
    services.task_create("gated", kind="noop", needs_approval=True)

    page = client.get("/api/engine/tasks?status=pending&limit=2", **bearer("read")).json()
    assert page["count"] == 3 and len(page["items"]) == 2
    assert {
        "id",
        "title",
        "kind",
        "payload",
        "priority",
        "status",
        "required_capabilities",
        "reason",
        "attempts",
        "max_attempts",
        "lease_expires_at",
    } <= set(page["items"][0])
    waiting = client.get("/api/engine/tasks?status=waiting_approval", **bearer("read")).json()
    assert waiting["count"] == 1 and waiting["items"][0]["reason"]
    assert_error(client.get("/api/engine/tasks?status=bogus", **bearer("read")), 422, "bad_status")


def test_it_creates_a_task_once_per_dedupe_key(client, bearer):
    body = {"title": "Fix NPE", "kind": "noop", "dedupe_key": "fp:123", "source": "logs"}
    first = post(client, "/tasks", body, **bearer("write"))
    second = post(client, "/tasks", body, **bearer("write"))
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert Task.objects.filter(dedupe_key="fp:123").count() == 1


def test_it_steers_tasks_as_an_operator(alice_client):
    task = services.task_create("t", kind="noop", needs_approval=True)
    csrf = {}  # the test client skips CSRF checks unless asked
    approved = post(alice_client, f"/tasks/{task.pk}/approve", {}, **csrf)
    assert approved.status_code == 200 and approved.json()["status"] == "pending"
    assert approved.json()["approved_by"] == "operator:alice"
    patched = alice_client.patch(
        f"/api/engine/tasks/{task.pk}", data=json.dumps({"priority": 7}), content_type="application/json"
    )
    assert patched.status_code == 200 and patched.json()["priority"] == 7
    cancelled = post(alice_client, f"/tasks/{task.pk}/cancel", {"reason": "not needed"})
    assert cancelled.json()["status"] == "cancelled"
    retried = post(alice_client, f"/tasks/{task.pk}/retry")
    assert retried.json()["status"] == "pending"
    detail = alice_client.get(f"/api/engine/tasks/{task.pk}").json()
    assert [e["to_status"] for e in detail["events"]] == [
        "waiting_approval",
        "pending",
        "pending",
        "cancelled",
        "pending",
    ]


def test_it_pauses_and_resumes_the_engine(alice_client):
    paused = post(alice_client, "/pause", {"reason": "incident"})
    assert paused.status_code == 200
    assert paused.json()["paused"] is True and paused.json()["paused_by"] == "operator:alice"
    assert "Engine paused by alice: incident." in alice_client.get("/api/engine/status").json()["summary"]
    resumed = post(alice_client, "/resume")
    assert resumed.json()["paused"] is False


def test_it_reassigns_only_to_a_live_worker_that_can_run_the_task_as_it_is(alice_client):
    services.worker_register("small", capabilities=["git"])
    services.worker_register("big", capabilities=["git", "gpu"])
    task = services.task_create("t", kind="noop", required_capabilities=["git", "gpu"])

    refused = post(alice_client, f"/tasks/{task.pk}/reassign", {"worker_name": "small"})
    assert_error(refused, 409)
    assert (
        "cannot run task" in refused.json()["error"]["message"]
        and "gpu" in refused.json()["error"]["message"]
    )
    assert_error(post(alice_client, f"/tasks/{task.pk}/reassign", {"worker_name": "nobody"}), 422)
    moved = post(alice_client, f"/tasks/{task.pk}/reassign", {"worker_name": "big"})
    assert moved.status_code == 200 and moved.json()["required_capabilities"] == ["git", "gpu"]
