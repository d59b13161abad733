"""Finding work in the HQ: the task list's search and filters, the worker page, and the task page's
actions, with every refusal shown as a sentence."""

import pytest

from juggernaut.engine import services
from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import Status, Task

HTMX = {"HTTP_HX_REQUEST": "true"}


def ids(response) -> list[int]:
    return [row["task"].pk for row in response.context["rows"]]


def test_it_searches_tasks_by_title_id_and_dedupe_key(alice_client):
    logs = services.task_create("Rotate logs", kind="noop", dedupe_key="rotate:api-7")
    deploy = services.task_create("Deploy api", kind="echo")

    assert ids(alice_client.get("/engine/tasks/?q=rotate")) == [logs.pk]
    assert ids(alice_client.get(f"/engine/tasks/?q=%23{deploy.pk}")) == [deploy.pk]
    assert ids(alice_client.get("/engine/tasks/?q=api-7")) == [logs.pk]
    assert ids(alice_client.get("/engine/tasks/?kind=echo")) == [deploy.pk]
    assert ids(alice_client.get("/engine/tasks/")) == [deploy.pk, logs.pk]


def test_it_filters_by_status_worker_source_and_attention(alice_client, make_worker):
    worker = make_worker("builtin", [])
    ran = services.task_create("Ran", kind="noop")
    services.task_claim(worker, incarnation=worker.incarnation)
    services.task_complete(ran.pk, worker_id=worker.pk, incarnation=worker.incarnation)
    waiting = services.task_create("Wait", kind="noop", needs_approval=True, source="chat")

    assert ids(alice_client.get("/engine/tasks/?status=done")) == [ran.pk]
    assert ids(alice_client.get("/engine/tasks/?worker=builtin")) == [ran.pk]
    assert ids(alice_client.get("/engine/tasks/?source=chat")) == [waiting.pk]
    assert ids(alice_client.get("/engine/tasks/?attention=on")) == [waiting.pk]


def test_it_pages_the_list_and_shrugs_off_bad_input(alice_client):
    Task.objects.bulk_create([Task(title=f"t{i}", kind="noop") for i in range(55)])
    first = alice_client.get("/engine/tasks/")
    assert len(ids(first)) == 50 and "page 1 of 2" in first.content.decode()
    assert len(ids(alice_client.get("/engine/tasks/?page=2"))) == 5
    for query in ["status=nope", "page=abc", "q=%00%00", "attention=maybe", "q=" + "x" * 500]:
        assert alice_client.get(f"/engine/tasks/?{query}").status_code == 200, query


def test_it_shows_a_worker_with_its_tasks_and_what_it_can_run(alice_client, make_worker):
    worker = make_worker("gpu-1", ["gpu", "timer"])
    task = services.task_create("Nap", kind="sleep")
    services.task_claim(worker, incarnation=worker.incarnation)

    page = alice_client.get(f"/engine/workers/{worker.pk}/").content.decode()

    assert "Worker gpu-1" in page and ">live<" in page and "gpu" in page
    assert "<code>sleep</code>" in page  # the registered kind whose capabilities it has
    assert f'id="engine-task-{task.pk}"' in page
    assert alice_client.get("/engine/workers/999999/").status_code == 404


def test_it_offers_every_action_a_task_allows_on_its_page(alice_client, make_worker):
    make_worker("big", ["gpu", "timer"])
    make_worker("small", ["timer"])
    pending = services.task_create("Render", kind="noop", required_capabilities=["gpu"])
    page = alice_client.get(f"/engine/tasks/{pending.pk}/").content.decode()
    for action in ["priority", "reassign", "cancel"]:
        assert f"/engine/tasks/{pending.pk}/{action}/" in page
    assert '<option value="big">big</option>' in page and '<option value="small">' not in page
    assert "window.prompt" not in page and "Set priority" in page

    waiting = services.task_create("Ship", kind="noop", needs_approval=True)
    assert (
        f"/engine/tasks/{waiting.pk}/approve/"
        in alice_client.get(f"/engine/tasks/{waiting.pk}/").content.decode()
    )


def test_it_says_why_a_reassignment_is_refused_and_keeps_the_requirements(alice_client, make_worker):
    make_worker("small", ["timer"])
    task = services.task_create("Render", kind="noop", required_capabilities=["gpu"])

    unknown = alice_client.post(
        f"/engine/tasks/{task.pk}/reassign/",
        {"worker_name": "nobody"},
        HTTP_REFERER=f"/engine/tasks/{task.pk}/",
    )
    assert unknown.status_code == 302 and unknown["Location"] == f"/engine/tasks/{task.pk}/"
    page = alice_client.get(unknown["Location"]).content.decode()
    assert "Refused: There is no worker named “nobody”; pick a live worker." in page

    flash = alice_client.post(
        f"/engine/tasks/{task.pk}/reassign/", {"worker_name": "small", "page": "engine"}, **HTMX
    ).content.decode()
    assert "Refused: Worker small cannot run task #" in flash and "it lacks gpu." in flash
    assert Task.objects.get(pk=task.pk).required_capabilities == ["gpu"]


def test_it_acknowledges_from_the_overview_and_redraws_the_line(alice_client, make_worker):
    worker = make_worker("builtin", [])
    task = services.task_create("Catalog", kind="noop", max_attempts=1)
    services.task_claim(worker, incarnation=worker.incarnation)
    services.task_fail(task.pk, worker_id=worker.pk, incarnation=worker.incarnation, error="boom")
    assert 'class="area-line state-error"' in alice_client.get("/").content.decode()

    answer = alice_client.post(f"/engine/tasks/{task.pk}/acknowledge/", {"page": "overview"}, **HTMX)

    body = answer.content.decode()
    assert "acknowledged: it no longer asks for attention" in body
    assert 'id="hq-area-engine" class="area-line state-ok"' in body
    assert Task.objects.get(pk=task.pk).status == Status.ESCALATED


def test_it_refreshes_a_static_page_after_an_action(alice_client):
    task = services.task_create("t", kind="noop")
    answer = alice_client.post(f"/engine/tasks/{task.pk}/cancel/", {"page": "static"}, **HTMX)
    assert answer["HX-Refresh"] == "true"
    assert "cancelled" in alice_client.get(f"/engine/tasks/{task.pk}/").content.decode()


def test_it_offers_only_workers_that_would_claim_the_task_by_its_kind(alice_client, make_worker):
    make_worker("anything", [])
    reports = services.worker_register("reports", kinds=["report.weekly"], capabilities=["report.weekly"])
    task = services.task_create("Render", kind="noop", required_capabilities=[])

    page = alice_client.get(f"/engine/tasks/{task.pk}/").content.decode()
    assert '<option value="anything">anything</option>' in page
    assert '<option value="reports">' not in page

    flash = alice_client.post(
        f"/engine/tasks/{task.pk}/reassign/", {"worker_name": "reports", "page": "engine"}, **HTMX
    ).content.decode()
    assert "Refused: Worker reports does not run tasks of kind noop; pick a worker that does." in flash
    with pytest.raises(EngineError) as refused:
        services.task_reassign(task.pk, actor="operator:alice", worker_name="reports")
    assert refused.value.code == "worker_incapable" and refused.value.details == {"kind": "noop"}

    worker_page = alice_client.get(f"/engine/workers/{reports.pk}/").content.decode()
    assert "<code>report.weekly</code>" in worker_page and "<code>noop</code>" not in worker_page
    assert "Other kinds run here" not in worker_page


def test_it_says_on_the_task_page_what_would_run_a_kind_nobody_runs(alice_client, make_worker):
    services.worker_register("builtin", kinds=["noop"])
    task = services.task_create("Weekly report", kind="report.weekly", required_capabilities=[])

    page = alice_client.get(f"/engine/tasks/{task.pk}/").content.decode()

    assert "No live worker can run it now" in page
    assert "manage.py engine_worker --name worker-2" not in page
    assert "<code>@register(&quot;report.weekly&quot;)</code>" in page
