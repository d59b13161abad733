"""The Engine page, its operator actions and the live fragments the HQ websocket sends."""

from juggernaut import hq
from juggernaut.engine import services
from juggernaut.engine.models import Status, Task, TaskEvent

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_it_needs_an_operator(client, bob):
    assert client.get("/engine/").status_code == 302
    client.force_login(bob)
    assert client.get("/engine/").status_code == 403  # a clear refusal, not a sign-in loop


def test_it_shows_queue_workers_and_waiting_tasks(alice_client):
    services.worker_register("builtin", capabilities=["timer"])
    waiting = services.task_create("Deploy v2", kind="noop", needs_approval=True)
    services.task_create("Tidy logs", kind="noop")

    page = alice_client.get("/engine/").content.decode()

    assert 'id="engine-counts"' in page and 'id="engine-chart"' in page and "<svg" in page
    assert f'id="engine-waiting-{waiting.pk}"' in page and waiting.reason.replace("'", "&#x27;") in page
    assert "builtin" in page and "timer" in page
    assert "1 task waits for your approval" not in page and "waits for your approval" in page
    # Template comments never reach the page (a {# #} comment is one line only).
    assert "{#" not in page and "#}" not in page


def test_it_approves_from_the_page_with_htmx(alice_client):
    task = services.task_create("Deploy v2", kind="noop", needs_approval=True)

    response = alice_client.post(f"/engine/tasks/{task.pk}/approve/", {"page": "engine"}, **HTMX)

    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="hq-flash"' in body and "approved" in body
    assert f'id="engine-waiting-{task.pk}"' not in body and f'id="engine-task-{task.pk}"' in body
    task.refresh_from_db()
    assert task.status == Status.PENDING and task.approved_by == "operator:alice"


def test_it_explains_a_refused_action(alice_client):
    task = services.task_create("t", kind="noop")
    response = alice_client.post(f"/engine/tasks/{task.pk}/approve/", {"page": "engine"}, **HTMX)
    assert "Refused: Task #" in response.content.decode() and "pending" in response.content.decode()
    assert Task.objects.get(pk=task.pk).status == Status.PENDING


def test_it_creates_and_reprioritises_tasks_from_the_page(alice_client):
    alice_client.post(
        "/engine/tasks/new/", {"title": "Nap", "kind": "sleep", "payload": '{"seconds": 1}', "priority": "3"}
    )
    task = Task.objects.get()
    assert task.required_capabilities == ["timer"] and task.priority == 3
    assert task.created_by == "operator:alice"
    alice_client.post(f"/engine/tasks/{task.pk}/priority/", {"priority": "9", "page": "engine"}, **HTMX)
    assert Task.objects.get().priority == 9
    assert TaskEvent.objects.filter(task=task, reason__contains="priority 3 → 9").exists()


def test_it_refuses_a_bad_payload_from_the_form(alice_client):
    response = alice_client.post(
        "/engine/tasks/new/", {"title": "x", "kind": "noop", "payload": "{", "page": "engine"}, **HTMX
    )
    assert "not JSON" in response.content.decode()
    assert not Task.objects.exists()


def test_it_pauses_and_resumes_from_the_page(alice_client):
    alice_client.post("/engine/pause/", {"reason": "incident 12"})
    page = alice_client.get("/engine/").content.decode()
    assert "Engine paused by alice: incident 12." in page
    assert "No worker claims anything new, and nothing is running." in page
    line = services.engine_area_status()
    assert line.state == "warn" and line.text.startswith("Engine paused by alice: incident 12.")
    assert line.actions[0].label == "Resume" and line.actions[0].post == "/engine/resume/"
    alice_client.post("/engine/resume/")
    assert "Engine paused" not in alice_client.get("/engine/").content.decode()


def test_it_shows_a_task_with_its_history(alice_client):
    task = services.task_create("t", kind="echo", payload={"a": 1})
    services.task_cancel(task.pk, actor="operator:alice", reason="dup")
    page = alice_client.get(f"/engine/tasks/{task.pk}/").content.decode()
    assert "cancelled by operator:alice: dup" in page
    assert alice_client.get("/engine/tasks/999999/").status_code == 404


def test_it_renders_engine_fragments_for_engine_events(db):
    task = services.task_create("Live one", kind="noop")
    envelope = {"topic": "engine", "type": "task_created", "seq": 1, "ts": "", "data": {"id": task.pk}}

    html = hq.render_events([envelope], page="engine")

    assert f'id="engine-task-{task.pk}"' in html and 'hx-swap-oob="true"' in html
    assert "engine-task" not in hq.render_events([{**envelope, "topic": "hq"}], page="engine")
    # The Overview gets its engine line, and does not pay for the Engine page's fragments.
    overview = hq.render_events([envelope], page="overview")
    assert 'id="hq-area-engine"' in overview and "engine-task" not in overview


def test_it_registers_the_overview_line(alice_client):
    services.task_create("t", kind="noop")
    overview = alice_client.get("/").content.decode()
    assert "/engine/" in overview and "No worker alive; 1 task waiting to run." in overview


def test_it_titles_the_page_without_markup(alice_client):
    page = alice_client.get("/engine/").content.decode()
    title = page.split("<title>")[1].split("</title>")[0]
    assert title == "Engine · Juggernaut HQ"
    assert "js/hq.js" in page
    assert "<script>" not in page and " hx-on" not in page and "style=" not in page  # nothing inline


def test_it_refuses_a_priority_that_is_not_a_number(alice_client):
    task = services.task_create("t", kind="noop", priority=2)
    response = alice_client.post(
        f"/engine/tasks/{task.pk}/priority/", {"priority": "urgent", "page": "engine"}, **HTMX
    )
    assert response.status_code == 200 and "Priority must be a whole number." in response.content.decode()
    response = alice_client.post(
        "/engine/tasks/new/", {"title": "x", "kind": "noop", "priority": "high", "page": "engine"}, **HTMX
    )
    assert "Priority must be a whole number." in response.content.decode()
    assert list(Task.objects.values_list("priority", flat=True)) == [2]
    response = alice_client.post(
        "/engine/tasks/999999/priority/", {"priority": "1", "page": "engine"}, **HTMX
    )
    assert response.status_code == 200 and "Refused: No task 999999." in response.content.decode()


def test_it_words_feed_items_as_one_sentence_each(db):
    services.task_create("Weekly report", kind="report.weekly")
    services.engine_tick()  # no worker is alive: blocked, with a reason that ends its own sentence
    waiting = services.task_create("Ship", kind="noop", needs_approval=True)
    services.engine_tick()

    texts = [i["item"].text for i in hq.recent_activity()]

    assert "1 task blocked: No worker is alive to run it." in texts
    assert f"Task #{waiting.pk} “Ship” waits for your approval." in texts
    assert not [t for t in texts if t.endswith("..")], texts
