"""Engine benchmark: claim-and-complete throughput, claim latency, and death-to-rescue time.

Run against a Postgres server (the script creates and drops its own database):

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/jhq_bench .venv/bin/python tests/bench/bench_engine.py

It prints figures and asserts nothing about time. Workers are separate processes (as in
production), each a plain claim → complete loop over the same no-op jobs. Systems in the same run:

- the engine, claiming with its one Postgres statement (``FOR UPDATE SKIP LOCKED`` … ``RETURNING``);
- the engine through its ORM path (compare-and-set per candidate, as on SQLite), to show what that
  statement is worth;
- django-q2's ORM broker (``enqueue`` / ``dequeue`` / ``acknowledge``), the broker the jobs cluster uses;
- procrastinate (``pip install -e '.[bench]'``), the Postgres task queue a team might pick instead;
- bare psycopg: one ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING`` and
  one ``UPDATE`` per job on a minimal table, the floor of what Postgres allows on this machine.

procrastinate's worker loop has no per-claim hook, so it reports throughput only.
"""

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.common import drop_database, pct, recreate_database  # noqa: E402

TASKS = int(os.environ.get("BENCH_TASKS", "3000"))
WORKER_COUNTS = [int(n) for n in os.environ.get("BENCH_WORKERS", "1,4,16").split(",")]
# Short lease and tick so the death-to-rescue figure is measured in seconds, not minutes.
os.environ.setdefault("ENGINE_LEASE_SECONDS", "5")
os.environ.setdefault("ENGINE_BACKOFF_BASE_SECONDS", "1")
os.environ.setdefault("ENGINE_HEARTBEAT_SECONDS", "1")
TICK_SECONDS = 1.0


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "juggernaut.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


# --- child roles ---------------------------------------------------------------------------------


def claim_complete_loop(claim, complete) -> None:
    """Say ready, wait for the start, then claim and complete one job at a time until none is left;
    print how many were done and how long each claim took."""
    print("ready", flush=True)
    sys.stdin.readline()
    latencies: list[float] = []
    done = 0
    while True:
        t0 = time.perf_counter()
        job = claim()
        latencies.append(time.perf_counter() - t0)
        if job is None:
            break
        complete(job)
        done += 1
    print(json.dumps({"done": done, "latencies": latencies}), flush=True)


def role_engine_worker(name: str) -> None:
    from juggernaut.engine import services

    worker = services.worker_register(name, capabilities=[])
    fence = {"worker_id": worker.pk, "incarnation": worker.incarnation}

    def claim():
        tasks = services.task_claim(worker, incarnation=worker.incarnation, limit=1)
        return tasks[0] if tasks else None

    claim_complete_loop(claim, lambda task: services.task_complete(task.pk, result=None, **fence))


def role_engine_orm_worker(name: str) -> None:
    """The engine's ORM claim and completion (its SQLite path) against Postgres."""
    from juggernaut.engine.services import claims

    claims.is_postgres = lambda: False
    role_engine_worker(name)


def role_q_worker(name: str) -> None:
    from django_q.brokers import get_broker

    broker = get_broker()
    print("ready", flush=True)
    sys.stdin.readline()
    latencies: list[float] = []
    done = 0
    while True:
        t0 = time.perf_counter()
        items = broker.dequeue()
        latencies.append(time.perf_counter() - t0)
        if not items:
            if broker.queue_size() == 0:
                break
            continue
        for task_id, _payload in items:
            broker.acknowledge(task_id)
            done += 1
    print(json.dumps({"done": done, "latencies": latencies}), flush=True)


BARE_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_bare_jobs (
    id bigserial PRIMARY KEY,
    status text NOT NULL DEFAULT 'pending',
    priority int NOT NULL DEFAULT 0,
    attempts int NOT NULL DEFAULT 0,
    payload jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS bench_bare_claim_idx ON bench_bare_jobs (priority DESC, id)
    WHERE status = 'pending';
TRUNCATE bench_bare_jobs;
"""
BARE_CLAIM = """
UPDATE bench_bare_jobs SET status = 'running', attempts = attempts + 1, started_at = now()
WHERE id = (
    SELECT id FROM bench_bare_jobs WHERE status = 'pending'
    ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING id
"""
BARE_COMPLETE = (
    "UPDATE bench_bare_jobs SET status = 'done', finished_at = now() WHERE id = %s AND status = 'running'"
)


def role_bare_worker(name: str) -> None:
    import psycopg

    from juggernaut.db import pg_connect_params

    with psycopg.connect(**pg_connect_params(), autocommit=True) as conn:
        claim_complete_loop(
            lambda: conn.execute(BARE_CLAIM).fetchone(), lambda row: conn.execute(BARE_COMPLETE, row)
        )


def procrastinate_app():
    """A procrastinate app on the bench database with one no-op task; returns (app, task, counter)."""
    import procrastinate

    from juggernaut.db import pg_connect_params

    # It warns about apps defined in a script's main module; workers here find the task by name.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    # One connection per worker, like the other systems here (its pool would open four).
    connector = procrastinate.PsycopgConnector(kwargs=pg_connect_params(), min_size=1, max_size=1)
    app = procrastinate.App(connector=connector)
    ran = {"n": 0}

    @app.task(name="bench.noop", queue="bench")
    def noop(i: int) -> None:
        ran["n"] += 1

    return app, noop, ran


def role_procrastinate_worker(name: str) -> None:
    app, _noop, ran = procrastinate_app()

    async def run() -> None:
        async with app.open_async():  # connected before the start, like the other workers
            print("ready", flush=True)
            sys.stdin.readline()
            # wait=False: stop once the queue is empty, like the other loops.
            await app.run_worker_async(
                queues=["bench"],
                name=name,
                concurrency=1,
                wait=False,
                listen_notify=False,
                install_signal_handlers=False,
            )

    asyncio.run(run())
    print(json.dumps({"done": ran["n"], "latencies": []}), flush=True)


def role_victim(name: str) -> None:
    """Claims one task and then hangs, to be killed."""
    from juggernaut.engine import services

    worker = services.worker_register(name, capabilities=["victim"])
    while not services.task_claim(worker, incarnation=worker.incarnation, limit=1):
        time.sleep(0.05)
    print("claimed", flush=True)
    time.sleep(3600)


def role_rescuer(name: str) -> None:
    """A worker loop that can run the victim's task once it is rescued."""
    from juggernaut.engine import handlers
    from juggernaut.engine.worker import WorkerLoop

    handlers.register("bench.victim", lambda ctx: time.sleep(0.5), capabilities=["victim"])
    loop = WorkerLoop(name, capabilities=["victim"], poll_seconds=0.2)
    import signal

    signal.signal(signal.SIGTERM, lambda *a: loop.stop())
    loop.run()


# --- the parent ----------------------------------------------------------------------------------


def spawn(role: str, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", role, "--name", name],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def run_phase(role: str, workers: int) -> dict:
    procs = [spawn(role, f"{role}-{workers}-{i}") for i in range(workers)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.stdout.readline()) for proc in procs]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.wait(120)  # a loaded machine can take a while to tear 16 processes down
    latencies = [x for r in results for x in r["latencies"]]
    done = sum(r["done"] for r in results)
    return {
        "done": done,
        "seconds": elapsed,
        "rate": done / elapsed,
        "p50_ms": pct(latencies, 0.50) * 1000,
        "p95_ms": pct(latencies, 0.95) * 1000,
    }


def engine_workload(workers: int, role: str = "engine-worker") -> dict:
    from django.db import connection

    from juggernaut.engine import services

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE engine_tasks, engine_task_events, engine_workers, events CASCADE")
    for i in range(TASKS):
        services.task_create(f"bench {i}", kind="noop", priority=i % 5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE engine_tasks")
    result = run_phase(role, workers)
    from juggernaut.engine.models import Status, Task

    result["left"] = Task.objects.exclude(status=Status.DONE).count()
    return result


def engine_orm_workload(workers: int) -> dict:
    return engine_workload(workers, role="engine-orm-worker")


def bare_workload(workers: int) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(BARE_SCHEMA)
        cursor.execute(
            "INSERT INTO bench_bare_jobs (priority, payload) SELECT i %% 5, '{}' FROM generate_series(1, %s) i",
            [TASKS],
        )
        cursor.execute("ANALYZE bench_bare_jobs")
    result = run_phase("bare-worker", workers)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_bare_jobs WHERE status <> 'done'")
        result["left"] = cursor.fetchone()[0]
    return result


def procrastinate_workload(workers: int) -> dict:
    app, noop, _ran = procrastinate_app()

    async def enqueue() -> None:
        async with app.open_async():
            await app.connector.execute_query_async("DELETE FROM procrastinate_jobs")
            for start in range(0, TASKS, 500):
                await noop.batch_defer_async(*[{"i": i} for i in range(start, min(start + 500, TASKS))])

    asyncio.run(enqueue())
    result = run_phase("procrastinate-worker", workers)

    async def left() -> int:
        async with app.open_async():
            row = await app.connector.execute_query_one_async(
                "SELECT count(*) AS n FROM procrastinate_jobs WHERE status <> 'succeeded'"
            )
            return row["n"]

    result["left"] = asyncio.run(left())
    return result


def procrastinate_schema() -> None:
    app, _noop, _ran = procrastinate_app()

    async def apply() -> None:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

    asyncio.run(apply())


def q_workload(workers: int) -> dict:
    from django_q.brokers import get_broker
    from django_q.models import OrmQ

    OrmQ.objects.all().delete()
    broker = get_broker()
    for i in range(TASKS):
        broker.enqueue(f"bench {i}")
    result = run_phase("q-worker", workers)
    result["left"] = OrmQ.objects.count()
    return result


def death_to_rescue() -> dict:
    from juggernaut.engine import services
    from juggernaut.engine.models import Status, Task

    task = services.task_create("victim task", kind="bench.victim", required_capabilities=["victim"])
    victim = spawn("victim", "victim")
    assert victim.stdout.readline().strip() == "claimed"
    first_owner = Task.objects.get(pk=task.pk).lease_owner_id
    rescuer = spawn("rescuer", "rescuer")
    time.sleep(1.0)  # the rescuer is up and idle
    victim.kill()
    died = time.perf_counter()
    next_tick = died
    rescued_after = None
    while time.perf_counter() - died < 120:
        if time.perf_counter() >= next_tick:
            report = services.engine_tick()
            if report.rescued and rescued_after is None:
                rescued_after = time.perf_counter() - died
            next_tick += TICK_SECONDS
        current = Task.objects.get(pk=task.pk)
        if current.status in (Status.RUNNING, Status.DONE) and current.lease_owner_id != first_owner:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - died
    rescuer.terminate()
    rescuer.wait(30)
    victim.wait(5)
    return {"seconds": elapsed, "rescued_after": rescued_after}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role")
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    if args.role:
        setup_django()
        {
            "engine-worker": role_engine_worker,
            "engine-orm-worker": role_engine_orm_worker,
            "q-worker": role_q_worker,
            "bare-worker": role_bare_worker,
            "procrastinate-worker": role_procrastinate_worker,
            "victim": role_victim,
            "rescuer": role_rescuer,
        }[args.role](args.name)
        return

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL=postgres://…/jhq_bench (the database is created and dropped)")
    recreate_database(url)
    try:
        setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        procrastinate_schema()
        print(
            f"engine bench: {TASKS} no-op tasks per run, workers are processes, Postgres; cpus={os.cpu_count()}"
        )
        print(
            f"{'workers':>7}  {'system':<22} {'tasks/s':>8} {'claim p50':>10} {'claim p95':>10} {'left':>5}"
        )
        for n in WORKER_COUNTS:
            for label, run in (
                ("engine (SKIP LOCKED)", engine_workload),
                ("engine (ORM path)", engine_orm_workload),
                ("django-q2 ORM broker", q_workload),
                ("procrastinate", procrastinate_workload),
                ("bare psycopg floor", bare_workload),
            ):
                r = run(n)
                p50 = "n/a" if r["p50_ms"] != r["p50_ms"] else f"{r['p50_ms']:.2f}ms"
                p95 = "n/a" if r["p95_ms"] != r["p95_ms"] else f"{r['p95_ms']:.2f}ms"
                print(f"{n:>7}  {label:<22} {r['rate']:>8.0f} {p50:>10} {p95:>10} {r['left']:>5}", flush=True)
        from django.conf import settings

        rescue = death_to_rescue()
        print(
            f"worker death → task running elsewhere: {rescue['seconds']:.2f} s "
            f"(lease {settings.ENGINE_LEASE_SECONDS} s, tick every {TICK_SECONDS:.0f} s, "
            f"backoff base {settings.ENGINE_BACKOFF_BASE_SECONDS} s; rescued by the tick after "
            f"{rescue['rescued_after'] if rescue['rescued_after'] is None else round(rescue['rescued_after'], 2)} s)"
        )
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(url)


if __name__ == "__main__":
    main()
