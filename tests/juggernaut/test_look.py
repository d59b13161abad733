"""One look: one age format, one chart component, feed sentences, the branded read-only admin."""

from datetime import UTC, datetime, timedelta

from django.template import Context, Template

from juggernaut.charts import Series, chart_build, chart_rows, nice_top
from juggernaut.engine import services
from juggernaut.feed import describe
from juggernaut.models import Event
from juggernaut.timefmt import age_text, duration_text


def test_it_words_every_age_one_way():
    assert [duration_text(s) for s in [0, 59, 60, 3599, 3600, 3660, 86399, 86400, 90000]] == [
        "0 s",
        "59 s",
        "1 min",
        "59 min",
        "1 h",
        "1 h 1 min",
        "23 h 59 min",
        "1 d",
        "1 d 1 h",
    ]
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert age_text(now - timedelta(seconds=77), now) == "1 min ago"
    assert age_text(now + timedelta(seconds=20), now) == "in 20 s"


def test_it_renders_a_relative_time_with_the_exact_utc_on_hover():
    when = datetime(2026, 11, 25, 11, 59, 57, tzinfo=UTC)
    html = Template("{% load hq %}{% ago when now %}").render(
        Context({"when": when, "now": when + timedelta(seconds=31)})
    )
    assert html == (
        '<time datetime="2026-11-25T11:59:57+00:00" title="2026-11-25 11:59:57 UTC" data-age="ago">31 s ago</time>'
    )


def test_it_draws_charts_with_axes_units_and_values_on_hover():
    assert nice_top(7) == (8.0, 2.0) and nice_top(0) == (4.0, 1.0) and nice_top(130) == (150.0, 50.0)
    spec = chart_build(
        "Done per hour",
        labels=["10:00", "11:00"],
        series=[
            Series("done", "tasks/h", [3, 7]),
            Series("queue depth", "tasks", [1, 0], kind="line", axis="right"),
        ],
    )
    assert spec["axes"]["left"].unit == "tasks/h" and spec["axes"]["left"].top == 8
    assert [t["text"] for t in spec["axes"]["left"].ticks] == ["0", "2", "4", "6", "8"]
    html = Template("{% load hq %}{% chart spec %}").render(Context({"spec": spec}))
    assert "<title>11:00: 7 tasks/h done</title>" in html
    assert "<title>10:00: 1 tasks queue depth</title>" in html
    assert "done (tasks/h)" in html and "queue depth (tasks)" in html


def test_it_turns_engine_events_into_linked_sentences_by_severity(db):
    worker = services.worker_register("builtin", capabilities=[])
    task = services.task_create("Catalog", kind="noop", max_attempts=1)
    services.task_claim(worker, incarnation=worker.incarnation)
    services.task_fail(task.pk, worker_id=worker.pk, incarnation=worker.incarnation, error="boom\nline 2")
    event = Event.objects.filter(type="task_escalated").get()

    item = describe(event.envelope())

    assert item.text == f"Task #{task.pk} “Catalog” escalated: it needs you."
    assert item.severity == "error" and item.url == f"/engine/tasks/{task.pk}/"
    assert item.detail == "boom\nline 2"
    assert describe({"topic": "hq", "type": "stuck_cleared", "data": {}}).text == "Stuck cleared."


def test_it_shows_errors_collapsed_to_their_first_line_in_the_feed(alice_client):
    worker = services.worker_register("builtin", capabilities=[])
    task = services.task_create("Catalog", kind="noop", max_attempts=1)
    services.task_claim(worker, incarnation=worker.incarnation)
    error = "Traceback (most recent call last):\n  File 'x.py'\nValueError: boom"
    services.task_fail(task.pk, worker_id=worker.pk, incarnation=worker.incarnation, error=error)
    page = alice_client.get("/").content.decode()
    assert 'class="activity-item sev-error"' in page
    assert "<summary>Traceback (most recent call last):</summary>" in page


def test_it_brands_the_admin_and_keeps_the_logs_read_only(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "r@example.com", "pw-pw-pw-pw")
    client.force_login(admin)
    services.task_create("t", kind="noop")
    index = client.get("/admin/").content.decode()
    assert "Juggernaut" in index and "Back to the HQ" in index and "Django administration" not in index
    for model in ["engine/taskevent", "juggernaut/event", "juggernaut/eventtopic"]:
        assert client.get(f"/admin/{model}/add/").status_code == 403, model
        listing = client.get(f"/admin/{model}/").content.decode()
        assert f'href="/admin/{model}/add/"' not in listing and 'name="action"' not in listing, model
    assert client.get("/favicon.ico").status_code == 301


def test_it_draws_a_comparison_as_rows_with_readable_labels():
    spec = chart_rows("Spend today by mode", items=[("chat", 1.25), ("ops", 0.5)], unit="USD")
    assert [r["pct"] for r in spec["rows"]] == [100.0, 40.0]
    html = Template("{% load hq %}{% chart spec %}").render(Context({"spec": spec}))
    assert '<span class="chart-row-label">ops</span>' in html and "<title>ops: 0.5 USD</title>" in html
    assert chart_rows("empty", items=[("chat", 0)], unit="USD")["empty"]


def test_the_api_docs_fit_a_phone(alice_client):
    page = alice_client.get("/api/docs").content.decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page, (
        "without it a phone lays the docs out 980 px wide"
    )


def test_a_score_axis_runs_to_its_full_scale_whatever_the_scores():
    chart = chart_build(
        "Code health",
        labels=["w1", "w2"],
        series=[
            Series("open findings", "findings", [7, 9], axis="right"),
            Series("score", "0-100", [12, 18], kind="line", top=100),
        ],
    )
    assert chart["axes"]["left"].unit == "0-100" and chart["axes"]["left"].ticks[-1]["text"] == "100"
    assert chart["axes"]["right"].ticks[-1]["text"] == "10", "the other axis keeps its own scale"
