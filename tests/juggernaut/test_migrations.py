"""Migrations are safe to deploy: applied over the previous release's schema full of rows, nothing is lost
and the HQ reads it; and none would lock a table for long or break the release still running beside it.

The previous release is each of our apps one migration back (an app whose last migration another app
builds on stays where it is), with a row in every table, written through the historical models of that
state, so no model code of today is involved in building yesterday's data.
"""

import datetime
import decimal
import uuid

import pytest
from django.db import connection, models, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django_migration_linter import MigrationLinter

from tests.conftest import needs_postgres

pytestmark = needs_postgres  # production runs PostgreSQL; SQLite rebuilds tables on most changes anyway

OUR_APPS = ["juggernaut", "engine", "chat", "selfheal", "logscrawler", "codehealth", "routing"]

PAGES = ["/", "/engine/", "/engine/tasks/", "/chat/", "/selfheal/", "/logs/", "/codehealth/", "/routing/"]
API = ["/api/engine/tasks", "/api/engine/workers", "/api/engine/status", "/api/chat/sessions", "/api/tokens"]


def previous_release(executor: MigrationExecutor) -> dict[str, tuple[str, str]]:
    """Each of our apps at the migration before its last, unless another app's migration builds on that
    last one (stepping back would take the other app's tables with it)."""
    graph = executor.loader.graph
    targets = {}
    for app in OUR_APPS:
        [leaf] = graph.leaf_nodes(app)
        node = graph.node_map[leaf]
        parents = sorted(p.key for p in node.parents if p.key[0] == app)
        depended_on = any(child.key[0] != app for child in node.children)
        targets[app] = leaf if depended_on or not parents else parents[-1]
    return targets


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh loader: what is applied now


def value_for(field: models.Field, model, seeded: dict):
    """A value the column accepts, with no knowledge of today's model code."""
    if field.is_relation:
        related = seeded.get(field.related_model._meta.label_lower)
        return related if related is not None or field.null else _MISSING
    if field.has_default():
        return field.get_default()
    if field.null:
        return None
    if field.choices:
        return field.choices[0][0]
    text = f"seed-{model._meta.model_name}-{field.name}"
    by_type = [
        (models.EmailField, "seed@example.com"),
        (models.URLField, "https://example.com/seed"),
        (models.GenericIPAddressField, "127.0.0.1"),
        (models.UUIDField, uuid.uuid4()),
        (models.CharField, text[: field.max_length or 255]),
        (models.TextField, text),
        (models.BooleanField, False),
        (models.DecimalField, decimal.Decimal("1")),
        (models.FloatField, 1.0),
        (models.IntegerField, 1),  # and the big, small and positive kinds
        (models.DateTimeField, timezone.now()),
        (models.DateField, datetime.date.today()),
        (models.DurationField, datetime.timedelta(minutes=1)),
        (models.JSONField, {}),
        (models.BinaryField, b"seed"),
    ]
    for kind, value in by_type:
        if isinstance(field, kind):
            return value
    raise AssertionError(f"no seed value for {model._meta.label}.{field.name} ({type(field).__name__})")


_MISSING = object()

# Values a generic row cannot guess: what a table's check constraints ask for.
ROW_VALUES = {
    "codehealth.repository": {"github_owner": "seed-owner", "github_name": "seed-name"},
}


def seed_every_table(historical_apps) -> tuple[dict[str, object], list[str]]:
    """One row in every table of this schema (rows that data migrations wrote count too); returns the
    rows by model and the tables that could not be seeded, with why."""
    pending = [m for m in historical_apps.get_models() if m._meta.managed and not m._meta.proxy]
    seeded: dict[str, object] = {}
    failures: dict[str, str] = {}
    for _ in range(len(pending)):  # parents before children, whatever the order
        for model in list(pending):
            label = model._meta.label_lower
            existing = model._default_manager.order_by("pk").first()
            if existing is not None:
                seeded[label] = existing
                pending.remove(model)
                continue
            fields = [f for f in model._meta.concrete_fields if not f.primary_key or not f.auto_created]
            fields = [f for f in fields if not isinstance(f, models.AutoField)]
            values = {f.name: value_for(f, model, seeded) for f in fields} | ROW_VALUES.get(label, {})
            if any(v is _MISSING for v in values.values()):
                continue  # a parent is not seeded yet
            try:
                with transaction.atomic():
                    seeded[label] = model._default_manager.create(**values)
                pending.remove(model)
                failures.pop(label, None)
            except Exception as exc:  # a constraint this generic row does not meet: said below
                failures[label] = f"{type(exc).__name__}: {exc}"
    for model in historical_apps.get_models():  # many-to-many tables: one link each
        for m2m in model._meta.local_many_to_many:
            source = seeded.get(model._meta.label_lower)
            target = seeded.get(m2m.related_model._meta.label_lower)
            if source is not None and target is not None and m2m.remote_field.through._meta.auto_created:
                getattr(source, m2m.name).add(target)
    for model in pending:
        missing = [
            f.name
            for f in model._meta.concrete_fields
            if f.is_relation and not f.null and f.related_model._meta.label_lower not in seeded
        ]
        if missing or model._meta.label_lower not in failures:
            failures[model._meta.label_lower] = f"a required parent was not seeded ({', '.join(missing)})"
    return seeded, [f"{label}: {why}" for label, why in sorted(failures.items())]


def table_rows(historical_apps) -> dict[str, int]:
    tables = {}
    for model in historical_apps.get_models(include_auto_created=True):
        if model._meta.managed and not model._meta.proxy:
            tables[model._meta.db_table] = model._default_manager.count()
    return tables


@pytest.mark.django_db(transaction=True)
def test_it_applies_every_migration_over_the_previous_releases_rows_and_reads_them(alice_client, capsys):
    executor = MigrationExecutor(connection)
    latest = [key for app in executor.loader.migrated_apps for key in executor.loader.graph.leaf_nodes(app)]
    targets = previous_release(executor)
    rehearsed = sorted(f"{app}.{name}" for app, name in latest if app in targets and targets[app][1] != name)
    assert rehearsed, "no app has a migration to rehearse"
    # Other apps (Django's, django-q2's) stay as they are: at their latest.
    previous = [targets.get(app, (app, name)) for app, name in latest]
    try:
        old = migrate(previous)
        old_apps = old.loader.project_state(previous).apps
        seeded, failures = seed_every_table(old_apps)
        assert not failures, (
            "tables the previous release's schema has but the test could not fill:\n" + "\n".join(failures)
        )
        before = table_rows(old_apps)
        assert all(before.values()), f"tables left empty: {[t for t, n in before.items() if not n]}"
    finally:
        new = migrate(latest)
    new_apps = new.loader.project_state(latest).apps
    after = table_rows(new_apps)

    lost = {table: (n, after.get(table)) for table, n in before.items() if after.get(table, -1) < n}
    assert not lost, f"rows lost by the migrations (before, after): {lost}"
    for label, row in seeded.items():
        model = new_apps.get_model(label)
        assert model._default_manager.filter(pk=row.pk).exists(), f"{label} row {row.pk} is gone"

    # The HQ reads yesterday's rows with today's code: every page and list answers.
    for url in PAGES + API:
        response = alice_client.get(url)
        assert response.status_code == 200, f"{url}: {response.status_code}"
    with capsys.disabled():
        print(
            f"\nmigration rehearsal: {len(before)} tables seeded over the previous schema "
            f"({sum(before.values())} rows), migrations applied over them: {', '.join(rehearsed)}"
        )


# Migrations written before the first deployment, when no older release ran beside them. Every later
# migration must lint clean: it then neither drops nor renames what the release before it still reads,
# nor adds a NOT NULL column that release cannot fill, nor takes a long table lock (an index is built
# with AddIndexConcurrently in a non-atomic migration).
BEFORE_THE_FIRST_DEPLOYMENT = {
    ("chat", "0002_queued_timeout"),
    ("codehealth", "0003_repository_names_unique_per_owner"),
    ("codehealth", "0004_pull_request_dropped_fixes"),
    ("juggernaut", "0002_event_correlation_id"),
    ("selfheal", "0003_execution_heartbeat"),
    ("codehealth", "0002_queue_schema_url_checks_and_dismissals"),
    ("engine", "0003_task_acknowledged"),
    ("engine", "0004_worker_owner_and_kinds"),
    ("engine", "0005_engine_state_created_at"),
    ("logscrawler", "0002_logalert"),
    ("logscrawler", "0004_logservice_backfilled_deployment_id_and_more"),
    ("logscrawler", "0006_remove_errorminute_error_minute_window_and_more"),
}


@pytest.mark.django_db
def test_it_allows_no_migration_that_breaks_the_release_running_beside_it():
    linter = MigrationLinter(
        None,
        database="default",
        no_cache=True,
        all_warnings_as_errors=True,
        ignore_name=[name for _, name in BEFORE_THE_FIRST_DEPLOYMENT],
        include_apps=OUR_APPS,
        quiet=["ok", "ignore"],
    )
    linter.lint_all_migrations()
    assert linter.nb_valid > 0
    assert linter.nb_erroneous == 0, (
        "a migration would break the release running beside it (the linter's lines above say how): split "
        "it over two releases, as docs/deploy.md's Upgrade section says"
    )
