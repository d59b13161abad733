"""A long ingest commits a bounded batch at a time: it never holds the event topics (whose row locks
number the events) for the whole request, so unrelated work, such as creating an engine task, goes
on while it runs. Needs PostgreSQL: SQLite has one writer at a time by design."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.test import Client, override_settings

from juggernaut.engine import services as engine
from juggernaut.engine.models import Task
from logscrawler import services
from logscrawler.apps import TASK_SOURCE
from logscrawler.models import LogLine, LogService
from tests.conftest import needs_postgres

pytestmark = [needs_postgres, pytest.mark.slow]

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BATCH = 100
LINES = 2000


def body() -> bytes:
    lines = []
    for n in range(LINES):
        # the first line is a new error: its alert creates an engine task, taking the engine topic
        message = "database connection refused by primary" if n == 0 else f"request {n} served in {n} ms"
        stamp = (T0 + timedelta(milliseconds=10 * n)).isoformat()
        severity = "error" if n == 0 else "info"
        lines.append(
            json.dumps({"service": "api", "timestamp": stamp, "message": message, "severity": severity})
        )
    return "\n".join(lines).encode()


@override_settings(LOGS_INGEST_BATCH_LINES=BATCH)
@pytest.mark.django_db(transaction=True)
def test_it_lets_an_engine_task_be_created_while_a_long_ingest_runs(make_token, monkeypatch):
    LogService.objects.create(name="api")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {make_token('write')}"}
    order: list[str] = []
    batches_done: list[int] = []
    first_batch_stored, task_created = threading.Event(), threading.Event()
    store = services.logs_ingest

    def observed(service, records, **kwargs):
        result = store(service, records, **kwargs)
        batches_done.append(len(records))
        if len(batches_done) == 1:
            first_batch_stored.set()
            # the rest of the ingest waits for the task (up to a minute): if the first batch's
            # transaction were still open, the task would wait for the ingest instead
            task_created.wait(timeout=60)
        return result

    monkeypatch.setattr(services, "logs_ingest", observed)

    def ingest() -> None:
        try:
            response = Client().post(
                "/api/logs/ingest", data=body(), content_type="application/x-ndjson", **headers
            )
            assert response.status_code == 200 and response.json()["accepted"] == LINES
            order.append("ingest")
        finally:
            connections.close_all()

    thread = threading.Thread(target=ingest)
    thread.start()
    assert first_batch_stored.wait(timeout=120)
    assert Task.objects.filter(source=TASK_SOURCE).count() == 1  # the first batch is committed
    engine.task_create("Rotate the backups", kind="noop")
    order.append("task")
    task_created.set()
    thread.join(timeout=300)
    assert order == ["task", "ingest"]
    assert len(batches_done) >= LINES // BATCH and max(batches_done) <= 2 * BATCH
    assert LogLine.objects.count() == LINES
