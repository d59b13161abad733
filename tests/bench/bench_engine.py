"""Engine benchmark: claim-and-complete throughput, claim latency, and death-to-rescue time.

Run against a Postgres server (the script creates and drops its own database):

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/jhq_bench .venv/bin/python tests/bench/bench_engine.py

It prints figures and asserts nothing about time. Workers are separate processes (as in
production), each a plain claim → complete loop; the peer is the same workload through django-q2's
ORM broker (``enqueue`` / ``dequeue`` / ``acknowledge``), the broker the HQ's jobs cluster uses.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
TASKS = int(os.environ.get("BENCH_TASKS", "3000"))
WORKER_COUNTS = [1, 4, 16]
# Short lease and tick so the death-to-rescue figure is measured in seconds, not minutes.
os.environ.setdefault("ENGINE_LEASE_SECONDS", "5")
os.environ.setdefault("ENGINE_BACKOFF_BASE_SECONDS", "1")
os.environ.setdefault("ENGINE_HEARTBEAT_SECONDS", "1")
TICK_SECONDS = 1.0


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "juggernaut.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- child roles ---------------------------------------------------------------------------------


def role_engine_worker(name: str) -> None:
    from juggernaut.engine import services

    worker = services.worker_register(name, capabilities=[])
    print("ready", flush=True)
    sys.stdin.readline()
    latencies: list[float] = []
    done = 0
    while True:
        t0 = time.perf_counter()
        tasks = services.task_claim(worker, incarnation=worker.incarnation, limit=1)
        latencies.append(time.perf_counter() - t0)
        if not tasks:
            break
        for task in tasks:
            services.task_complete(task.pk, worker_id=worker.pk, incarnation=worker.incarnation, result=None)
            done += 1
    print(json.dumps({"done": done, "latencies": latencies}), flush=True)


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
        proc.wait(30)
    latencies = [x for r in results for x in r["latencies"]]
    done = sum(r["done"] for r in results)
    return {
        "done": done,
        "seconds": elapsed,
        "rate": done / elapsed,
        "p50_ms": pct(latencies, 0.50) * 1000,
        "p95_ms": pct(latencies, 0.95) * 1000,
    }


def engine_workload(workers: int) -> dict:
    from django.db import connection

    from juggernaut.engine import services

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE engine_tasks, engine_task_events, engine_workers, events CASCADE")
    for i in range(TASKS):
        services.task_create(f"bench {i}", kind="noop", priority=i % 5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE engine_tasks")
    result = run_phase("engine-worker", workers)
    from juggernaut.engine.models import Status, Task

    result["left"] = Task.objects.exclude(status=Status.DONE).count()
    return result


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
            "q-worker": role_q_worker,
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
        print(
            f"engine bench: {TASKS} no-op tasks per run, workers are processes, Postgres; cpus={os.cpu_count()}"
        )
        print(
            f"{'workers':>7}  {'system':<22} {'tasks/s':>8} {'claim p50':>10} {'claim p95':>10} {'left':>5}"
        )
        for n in WORKER_COUNTS:
            for label, run in (
                ("engine (SKIP LOCKED)", engine_workload),
                ("django-q2 ORM broker", q_workload),
            ):
                r = run(n)
                print(
                    f"{n:>7}  {label:<22} {r['rate']:>8.0f} {r['p50_ms']:>8.2f}ms {r['p95_ms']:>8.2f}ms {r['left']:>5}",
                    flush=True,
                )
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
