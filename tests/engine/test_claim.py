"""The claim protocol: ordering, capability routing, due times, the stop switch, many workers at once."""

import sys
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from juggernaut.engine import services
from juggernaut.engine.errors import EngineError
from juggernaut.engine.models import Status, Task, TaskEvent
from juggernaut.engine.worker import WorkerLoop
from tests.conftest import needs_postgres


def test_it_claims_highest_priority_then_oldest(db, make_worker):
    worker = make_worker()
    low = services.task_create("low", kind="noop", priority=0)
    high_old = services.task_create("high, older", kind="noop", priority=5)
    high_new = services.task_create("high, newer", kind="noop", priority=5)

    claimed = services.task_claim(worker, incarnation=worker.incarnation, limit=2)

    assert [t.pk for t in claimed] == [high_old.pk, high_new.pk]
    assert all(t.status == Status.RUNNING and t.lease_owner_id == worker.pk for t in claimed)
    assert all(t.lease_expires_at > timezone.now() and t.attempts == 1 for t in claimed)
    low.refresh_from_db()
    assert low.status == Status.PENDING


def test_it_claims_only_what_the_worker_can_run(db, make_worker):
    plain = make_worker("plain", [])
    gpu = make_worker("gpu", ["gpu", "llm"])
    needs_gpu = services.task_create("render", kind="noop", required_capabilities=["gpu"], priority=9)
    anyone = services.task_create("tidy", kind="noop")

    assert [t.pk for t in services.task_claim(plain, incarnation=plain.incarnation, limit=5)] == [anyone.pk]
    assert [t.pk for t in services.task_claim(gpu, incarnation=gpu.incarnation, limit=5)] == [needs_gpu.pk]


def test_it_skips_tasks_that_are_not_due(db, make_worker):
    worker = make_worker()
    later = services.task_create("later", kind="noop")
    Task.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))

    assert services.task_claim(worker, incarnation=worker.incarnation) == []
    soon = timezone.now() + timedelta(minutes=6)
    assert [t.pk for t in services.task_claim(worker, incarnation=worker.incarnation, now=soon)] == [later.pk]


def test_it_waits_for_a_dependency_to_finish(db, make_worker):
    worker = make_worker()
    first = services.task_create("first", kind="noop", priority=-1)
    second = services.task_create("second", kind="noop", depends_on=first.pk, priority=10)

    claimed = services.task_claim(worker, incarnation=worker.incarnation, limit=5)
    assert [t.pk for t in claimed] == [first.pk]
    services.task_complete(first.pk, worker_id=worker.pk, incarnation=worker.incarnation)
    assert [t.pk for t in services.task_claim(worker, incarnation=worker.incarnation)] == [second.pk]


def test_it_claims_nothing_while_paused(db, make_worker):
    worker = make_worker()
    task = services.task_create("t", kind="noop")
    services.engine_pause(actor="operator:alice", reason="deploying")

    assert services.task_claim(worker, incarnation=worker.incarnation) == []
    services.engine_resume(actor="operator:alice")
    assert [t.pk for t in services.task_claim(worker, incarnation=worker.incarnation)] == [task.pk]


def test_it_refuses_a_claim_from_a_stale_incarnation(db, make_worker):
    old = make_worker("w")
    services.task_create("t", kind="noop")
    make_worker("w")  # the same worker restarted

    with pytest.raises(EngineError) as exc:
        services.task_claim(old, incarnation=old.incarnation)
    assert exc.value.status == 409 and exc.value.code == "stale_incarnation"
    assert Task.objects.get().status == Status.PENDING


def _run_exactly_once(handler, loops, *, workers: int, tasks: int) -> None:
    seen: set[int] = set()
    twice: list[int] = []
    lock = threading.Lock()

    def once(ctx):
        with lock:
            if ctx.task_id in seen:
                twice.append(ctx.task_id)
                raise AssertionError(f"task {ctx.task_id} ran twice")
            seen.add(ctx.task_id)
        return {"id": ctx.task_id}

    handler("test.once", once)
    for i in range(tasks):
        services.task_create(f"t{i}", kind="test.once", priority=i % 7)
    for n in range(workers):
        loops.start(WorkerLoop(f"w{n}", capabilities=[], poll_seconds=0.2), exit_when_idle=True)
    loops.join(timeout=600)

    assert not loops.errors
    assert twice == []
    assert len(seen) == tasks
    assert Task.objects.filter(status=Status.DONE).count() == tasks
    assert not Task.objects.exclude(status=Status.DONE).exists()
    claims = TaskEvent.objects.filter(to_status=Status.RUNNING).count()
    assert claims == tasks
    assert sum(loop.completed for loop in loops.loops) == tasks


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_completes_every_task_once_with_4_workers(handler, loops):
    _run_exactly_once(handler, loops, workers=4, tasks=300)


@pytest.fixture
def short_gil_switch():
    # 48 threads doing database I/O in one process convoy on the GIL at the default 5 ms switch
    # interval; real workers are separate processes, so this only keeps the test quick.
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    yield
    sys.setswitchinterval(before)


@pytest.mark.slow
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_it_completes_2000_tasks_once_with_16_workers_on_postgres(handler, loops, short_gil_switch):
    _run_exactly_once(handler, loops, workers=16, tasks=2000)


def _columns(task: Task) -> dict:
    task.refresh_from_db()
    skip = {"id", "title", "created_at"}
    return {f.attname: getattr(task, f.attname) for f in Task._meta.concrete_fields if f.attname not in skip}


@needs_postgres
@pytest.mark.django_db
def test_it_sets_the_same_columns_on_both_claim_and_complete_paths(make_worker, monkeypatch):
    """Postgres claims and completes with one SQL statement; SQLite with the ORM: the rows must agree."""
    from juggernaut.engine.services import claims

    worker = make_worker("twin", capabilities=["gpu"])
    fence = {"worker_id": worker.pk, "incarnation": worker.incarnation}
    now = timezone.now()
    by_sql = services.task_create("by sql", kind="noop", required_capabilities=["gpu"], priority=2)
    by_orm = services.task_create("by orm", kind="noop", required_capabilities=["gpu"], priority=1)
    Task.objects.filter(pk__in=[by_sql.pk, by_orm.pk]).update(created_at=now, status_changed_at=now)

    assert [t.pk for t in services.task_claim(worker, incarnation=worker.incarnation, now=now)] == [by_sql.pk]
    with monkeypatch.context() as patch:
        patch.setattr(claims, "is_postgres", lambda: False)
        claimed = services.task_claim(worker, incarnation=worker.incarnation, now=now)
        assert [t.pk for t in claimed] == [by_orm.pk]
    assert _columns(by_sql) | {"priority": 0} == _columns(by_orm) | {"priority": 0}
    assert by_orm.status == Status.RUNNING and by_orm.lease_owner_id == worker.pk

    later = now + timedelta(seconds=5)
    services.task_complete(by_sql.pk, result={"ok": 1}, now=later, **fence)
    with monkeypatch.context() as patch:
        patch.setattr(claims, "is_postgres", lambda: False)
        services.task_complete(by_orm.pk, result={"ok": 1}, now=later, **fence)
    assert _columns(by_sql) | {"priority": 0} == _columns(by_orm) | {"priority": 0}
    assert by_orm.status == Status.DONE and by_orm.lease_incarnation is None
