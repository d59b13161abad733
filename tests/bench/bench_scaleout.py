"""Scale-out benchmark: 2 web, 2 jobs and 3 worker hosts against one PostgreSQL, each host a Linux network
namespace of this machine joined by veth pairs to a bridge. Nothing leaves the machine: every address is
one this script gives its own namespaces (10.213.77.0/24).

    sudo .venv/bin/python tests/bench/bench_scaleout.py   # root: namespaces and a private Postgres

Postgres is a private cluster (initdb into a temporary directory, run as the postgres user) listening on
the bridge's address only, so the machine's own server is left as it is. Everything is removed at the
end, whatever happened. It prints, and asserts nothing about time:

- events: websocket and SSE clients spread over both web hosts receive a burst; one web host is killed
  halfway and its clients resume on the other (``after_seq`` / ``Last-Event-ID``): delivered,
  duplicated, lost, out of order, and the time from losing a host to the first event from the other;
- claims: tasks claimed and completed by the 3 worker hosts: claims/s, duplicates, losses; then one
  worker host's network is cut while it holds a lease: the jobs hosts' autonomy loop rescues the task,
  another worker finishes it, and the cut worker's late answer is refused;
- schedules: runs of each minute schedule per minute with both jobs clusters up.

The machine has 2 cores shared by every process here, so the defaults are smaller than a production
burst; BENCH_EVENTS, BENCH_WS_CLIENTS, BENCH_SSE_CLIENTS, BENCH_TASKS and BENCH_SCHEDULE_MINUTES scale it;
BENCH_PHASES (events,claims,schedules) picks the parts.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

EVENTS = int(os.environ.get("BENCH_EVENTS", "2000"))
WS_CLIENTS = int(os.environ.get("BENCH_WS_CLIENTS", "40"))
SSE_CLIENTS = int(os.environ.get("BENCH_SSE_CLIENTS", "10"))
TASKS = int(os.environ.get("BENCH_TASKS", "5000"))
SCHEDULE_MINUTES = int(os.environ.get("BENCH_SCHEDULE_MINUTES", "3"))
PHASES = os.environ.get("BENCH_PHASES", "events,claims,schedules").split(",")

SUBNET = "10.213.77"
BRIDGE = "jhqbr0"
PG_ADDR, PG_PORT = f"{SUBNET}.1", 54329
HOSTS = {"web1": 11, "web2": 12, "jobs1": 21, "jobs2": 22, "worker1": 31, "worker2": 32, "worker3": 33}
WEB_PORT = 8000
DB_NAME = "jhq_scaleout"
DATABASE_URL = f"postgres://postgres@{PG_ADDR}:{PG_PORT}/{DB_NAME}"
LEASE_SECONDS = 5

# What every host's processes see (the same settings a deployment sets).
HOST_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": ",".join(f"{SUBNET}.{n}" for n in HOSTS.values()),
    "SECURE_SSL_REDIRECT": "0",
    "LOG_LEVEL": "WARNING",
    "ENGINE_LEASE_SECONDS": str(LEASE_SECONDS),
    "ENGINE_TICK_SECONDS": "2",
    "ENGINE_HEARTBEAT_SECONDS": "1",
    "ENGINE_BACKOFF_BASE_SECONDS": "1",
    "DATABASE_POOL_MAX_SIZE": "8",
    "CODEHEALTH_REGISTRY_LOOKUPS": "0",
    "GITHUB_API_URL": "http://127.0.0.1:9",
    "OPENROUTER_BASE_URL": "http://127.0.0.1:9",
    "RAILWAY_API_URL": "http://127.0.0.1:9",
    "CODEHEALTH_OSV_URL": "http://127.0.0.1:9",
}


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


# --- the private Postgres and the hosts ----------------------------------------------------------


class Lab:
    """The bridge, one namespace per host, a private Postgres on the bridge, and every process started
    here; ``close()`` removes all of it."""

    def __init__(self) -> None:
        self.pg_dir = Path(tempfile.mkdtemp(prefix="jhq-scaleout-pg-"))
        self.log_dir = Path(tempfile.mkdtemp(prefix="jhq-scaleout-logs-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.namespaces: list[str] = []
        self.bridge = False
        self.pg_started = False

    def network_up(self) -> None:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        self.bridge = True
        sh("ip", "addr", "add", f"{PG_ADDR}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for host, n in HOSTS.items():
            ns = f"jhq-{host}"
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            outside = f"jhqv-{host}"
            sh("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", outside, "master", BRIDGE)
            sh("ip", "link", "set", outside, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{SUBNET}.{n}/24", "dev", "eth0")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def postgres_up(self) -> None:
        shutil.chown(self.pg_dir, "postgres", "postgres")
        bin_dir = Path(
            sh("pg_config", "--bindir", check=False).stdout.strip() or "/usr/lib/postgresql/15/bin"
        )
        if not (bin_dir / "initdb").exists():
            bin_dir = max(Path("/usr/lib/postgresql").glob("*/bin"))
        data = self.pg_dir / "data"
        as_pg = ["runuser", "-u", "postgres", "--"]
        sh(*as_pg, str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres")
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n")
        options = (
            f"-c listen_addresses={PG_ADDR} -p {PG_PORT} -k {self.pg_dir} -c max_connections=300 "
            "-c fsync=off -c synchronous_commit=off -c shared_buffers=256MB"
        )
        sh(
            *as_pg,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(data / "log"),
            "start",
        )
        self.pg_started = True
        self.pg_ctl = [*as_pg, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]

    def start(self, name: str, host: str, argv: list[str], **env: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", f"jhq-{host}", *argv],
            cwd=ROOT,
            env={**os.environ, **HOST_ENV, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if name.startswith(("claimer", "victim", "producer")) else log,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)
            self.kill(name)
        if self.pg_started:
            sh(*self.pg_ctl, check=False)
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)
        if self.bridge:
            sh("ip", "link", "del", BRIDGE, check=False)
        shutil.rmtree(self.pg_dir, ignore_errors=True)
        print(f"(process logs kept in {self.log_dir})")


def web_url(host: str) -> str:
    return f"http://{SUBNET}.{HOSTS[host]}:{WEB_PORT}"


def manage(*args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **HOST_ENV},
        check=True,
        capture_output=True,
    )


def setup_django() -> None:
    os.environ.update(HOST_ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "juggernaut.settings")
    import django

    django.setup()


# --- event clients (in this process) -------------------------------------------------------------


class Client:
    """One subscriber: which seqs it received, how often, and how long a lost host kept it waiting."""

    def __init__(self, kind: str, hosts: list[str], token: str, after: int) -> None:
        self.kind, self.hosts, self.token, self.after = kind, hosts, token, after
        self.seen: Counter[int] = Counter()
        self.last = after
        self.out_of_order = 0
        self.reconnect_seconds: list[float] = []
        self.lost_at: float | None = None
        self.drops: Counter[str] = Counter()

    def take(self, seq: int) -> None:
        if self.lost_at is not None:
            self.reconnect_seconds.append(time.monotonic() - self.lost_at)
            self.lost_at = None
        self.seen[seq] += 1
        if seq <= self.last and self.seen[seq] == 1:
            self.out_of_order += 1
        self.last = max(self.last, seq)

    async def run(self, until_seq: int, deadline: float) -> None:
        """Read until the last seq, reconnecting like a browser does: after a failure to the next host
        in the list (the killed one's clients go to the other), else to the same one again."""
        hosts = list(self.hosts)
        while self.last < until_seq and time.monotonic() < deadline:
            try:
                if self.kind == "ws":
                    await self._ws(hosts[0], until_seq, deadline)
                else:
                    await self._sse(hosts[0], until_seq, deadline)
            except Exception as exc:  # the host went away, or answered too late under load
                self.drops[type(exc).__name__] += 1
                if self.lost_at is None:
                    self.lost_at = time.monotonic()
                if len(hosts) > 1:
                    hosts.pop(0)
                else:
                    await asyncio.sleep(0.5)

    async def _ws(self, host: str, until_seq: int, deadline: float) -> None:
        from websockets.asyncio.client import connect

        url = web_url(host).replace("http", "ws") + "/ws/events/"
        async with connect(
            url, additional_headers={"Authorization": f"Bearer {self.token}"}, open_timeout=30
        ) as ws:
            await ws.send(json.dumps({"subscribe": ["hq"], "after_seq": {"hq": self.last}}))
            while self.last < until_seq:
                message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
                if "seq" in message:
                    self.take(message["seq"])

    async def _sse(self, host: str, until_seq: int, deadline: float) -> None:
        address = web_url(host).removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(address[0], int(address[1]))
        try:
            request = (
                f"GET /api/events/hq/stream HTTP/1.0\r\nHost: {address[0]}\r\n"
                f"Authorization: Bearer {self.token}\r\nLast-Event-ID: {self.last}\r\n\r\n"
            )
            writer.write(request.encode())
            await writer.drain()
            status = await reader.readline()
            if b" 200 " not in status:
                raise OSError(f"SSE answered {status!r}")
            while self.last < until_seq:
                line = await asyncio.wait_for(reader.readline(), deadline - time.monotonic())
                if not line:
                    raise OSError("stream closed")
                if line.startswith(b"id: "):
                    self.take(int(line[4:]))
        finally:
            writer.close()


# --- child roles (run inside a host's namespace) -------------------------------------------------


def role_producer() -> None:
    """Publish the burst, one transaction per event, saying when half is out."""
    setup_django()
    from juggernaut.events import publish

    sys.stdin.readline()
    for i in range(EVENTS):
        publish("hq", "bench", {"i": i})
        if i == EVENTS // 2:
            print("half", flush=True)
    print("done", flush=True)


def role_claimer(name: str) -> None:
    """Claim and complete no-op tasks until none is left; print every id it completed."""
    setup_django()
    from juggernaut.engine import services

    worker = services.worker_register(name, capabilities=[])
    fence = {"worker_id": worker.pk, "incarnation": worker.incarnation}
    print("ready", flush=True)
    sys.stdin.readline()
    done: list[int] = []
    idle_since = None
    beat = time.monotonic()
    while True:
        if time.monotonic() - beat > 0.5:  # stay live, or the autonomy loop parks the queue for want of one
            services.worker_heartbeat(worker, incarnation=worker.incarnation)
            beat = time.monotonic()
        tasks = services.task_claim(worker, incarnation=worker.incarnation, limit=1)
        if not tasks:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 3:
                break
            time.sleep(0.1)
            continue
        idle_since = None
        services.task_complete(tasks[0].pk, result=None, **fence)
        done.append(tasks[0].pk)
    print(json.dumps(done), flush=True)


def role_victim(name: str) -> None:
    """Claim one task, wait (its host's network is cut meanwhile), then try to complete it late."""
    setup_django()
    from juggernaut.engine import services
    from juggernaut.engine.errors import EngineError

    worker = services.worker_register(name, capabilities=["victim"])
    while not (tasks := services.task_claim(worker, incarnation=worker.incarnation, limit=1)):
        time.sleep(0.2)
    print(tasks[0].pk, flush=True)
    sys.stdin.readline()
    try:
        services.task_complete(
            tasks[0].pk, worker_id=worker.pk, incarnation=worker.incarnation, result="late"
        )
        print("accepted", flush=True)
    except EngineError as exc:
        print(f"refused {exc.code}", flush=True)


# --- the phases ----------------------------------------------------------------------------------


def events_phase(lab: Lab, token: str) -> None:
    from juggernaut.events import last_seqs

    start_seq = last_seqs(["hq"]).get("hq", 0)
    until = start_seq + EVENTS
    clients = [
        Client(kind, ["web1", "web2"] if i % 2 == 0 else ["web2"], token, start_seq)
        for kind, count in (("ws", WS_CLIENTS), ("sse", SSE_CLIENTS))
        for i in range(count)
    ]
    producer = lab.start("producer", "jobs1", [sys.executable, __file__, "--role", "producer"])

    async def burst() -> float:
        deadline = time.monotonic() + 60 + EVENTS / 20
        runs = [asyncio.create_task(c.run(until, deadline)) for c in clients]
        await asyncio.sleep(3)  # every client subscribed
        started = time.monotonic()
        producer.stdin.write("go\n")
        producer.stdin.flush()
        loop = asyncio.get_running_loop()
        assert (await loop.run_in_executor(None, producer.stdout.readline)).strip() == "half"
        lab.kill("web1")  # mid-burst: web1's clients must resume on web2
        killed_at = time.monotonic()
        await asyncio.gather(*runs)
        return started, killed_at, time.monotonic()

    started, killed_at, ended = asyncio.run(burst())
    expected = set(range(start_seq + 1, until + 1))
    for kind in ("ws", "sse"):
        group = [c for c in clients if c.kind == kind]
        if not group:
            continue
        delivered = sum(len(expected & set(c.seen)) for c in group)
        dupes = sum(n - 1 for c in group for n in c.seen.values() if n > 1)
        disorder = sum(c.out_of_order for c in group)
        moved = [c for c in group if len(c.hosts) == 2]
        waits = [s for c in moved for s in c.reconnect_seconds]
        print(
            f"events/{kind}: {len(group)} clients × {EVENTS} events: delivered {delivered} of "
            f"{len(group) * EVENTS}, duplicated {dupes}, lost {len(group) * EVENTS - delivered}, "
            f"out of order {disorder}; {len(moved)} moved off the killed host, "
            f"first event from the other host after {_summary(waits)}; "
            f"disconnects {dict(sum((c.drops for c in group), Counter())) or 'none'}"
        )
    print(
        f"events: burst of {EVENTS} took {ended - started:.1f} s end to end (web1 killed at {killed_at - started:.1f} s)"
    )


def claims_phase(lab: Lab) -> None:
    from django.db import connection

    from juggernaut.engine import services
    from juggernaut.engine.models import Status, Task

    for i in range(TASKS):
        services.task_create(f"scale-out {i}", kind="noop", priority=i % 5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE engine_tasks")
    names = ["worker1", "worker2", "worker3"]
    procs = [
        lab.start(f"claimer-{h}", h, [sys.executable, __file__, "--role", "claimer", "--name", h])
        for h in names
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    done = [json.loads(proc.stdout.readline()) for proc in procs]
    elapsed = time.monotonic() - started - 3  # each claimer waits 3 s on an empty queue before it stops
    claimed = Counter(task_id for ids in done for task_id in ids)
    left = Task.objects.filter(title__startswith="scale-out ").exclude(status=Status.DONE).count()
    print(
        f"claims: {TASKS} tasks over 3 worker hosts in {elapsed:.1f} s: {sum(claimed.values()) / elapsed:.0f} "
        f"claims/s ({', '.join(str(len(ids)) for ids in done)} per host), "
        f"duplicated {sum(n - 1 for n in claimed.values())}, lost {left}"
    )

    # One host's network cut while it holds a lease: rescued by the jobs hosts, finished elsewhere, and
    # its late answer refused.
    task = services.task_create("cut off", kind="noop", required_capabilities=["victim"])
    victim = lab.start(
        "victim", "worker3", [sys.executable, __file__, "--role", "victim", "--name", "victim"]
    )
    assert int(victim.stdout.readline()) == task.pk
    sh("ip", "netns", "exec", "jhq-worker3", "ip", "link", "set", "eth0", "down")
    cut = time.monotonic()
    rescuer = services.worker_register("rescuer", capabilities=["victim"])
    while not (taken := services.task_claim(rescuer, incarnation=rescuer.incarnation, limit=1)):
        time.sleep(0.2)
    rescued_after = time.monotonic() - cut
    services.task_complete(
        taken[0].pk, worker_id=rescuer.pk, incarnation=rescuer.incarnation, result="rescued"
    )
    sh("ip", "netns", "exec", "jhq-worker3", "ip", "link", "set", "eth0", "up")
    victim.stdin.write("go\n")
    victim.stdin.flush()
    answer = victim.stdout.readline().strip()
    task.refresh_from_db()
    print(
        f"claims: worker3 cut off holding task {task.pk} (lease {LEASE_SECONDS} s): rescued and claimed by "
        f"another worker after {rescued_after:.1f} s; its late answer: {answer}; the task ends {task.status} "
        f"with result {task.result!r}"
    )


def schedules_phase(cluster_started: float) -> None:
    from django_q.models import Schedule
    from django_q.models import Task as QTask

    wait = cluster_started + 60 * (SCHEDULE_MINUTES + 1) - time.monotonic()
    if SCHEDULE_MINUTES and wait > 0:
        print(f"schedules: waiting {wait:.0f} s for {SCHEDULE_MINUTES} full minutes of both jobs clusters")
        time.sleep(wait)
    for func in ("juggernaut.engine.tasks.engine_tick", "chat.tasks.runs_sweep"):
        schedule = Schedule.objects.get(func=func)
        started = list(QTask.objects.filter(func=func).order_by("started").values_list("started", flat=True))
        # The schedule's periods end at its next run, a minute apart: a run belongs to the period it
        # started in (a cluster picks a due schedule up a few seconds to half a minute late).
        period = [math.ceil((schedule.next_run - moment).total_seconds() / 60) - 1 for moment in started]
        runs = Counter(period)
        missed = [k for k in range(min(period, default=0), max(period, default=-1)) if k not in runs]
        gaps = [round((b - a).total_seconds()) for a, b in zip(started, started[1:], strict=False)]
        print(
            f"schedules: {func} (every minute) with 2 jobs clusters: {len(started)} runs over {len(runs)} "
            f"periods, {sum(n - 1 for n in runs.values())} periods ran it twice, {len(missed)} missed; "
            f"seconds between runs {gaps}"
        )


def _summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    values = sorted(values)
    return f"median {values[len(values) // 2]:.2f} s, max {values[-1]:.2f} s"


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root: network namespaces, and a private Postgres run as the postgres user")
    print(
        f"scale-out: 2 web, 2 jobs, 3 worker hosts; {WS_CLIENTS} websocket + {SSE_CLIENTS} SSE clients, "
        f"{EVENTS} events, {TASKS} tasks, schedules over {SCHEDULE_MINUTES} minutes ({os.cpu_count()} cores)"
    )
    lab = Lab()
    try:
        lab.network_up()
        lab.postgres_up()
        sh("psql", "-h", PG_ADDR, "-p", str(PG_PORT), "-U", "postgres", "-qc", f"CREATE DATABASE {DB_NAME}")
        manage("predeploy")
        setup_django()
        from django.contrib.auth import get_user_model

        from juggernaut.models import ApiToken

        user = get_user_model().objects.create_user(
            "bench", password=secrets.token_urlsafe(16), is_staff=True
        )
        token, raw = ApiToken.generate(name="bench", user=user, scopes=["read"], days=1)
        token.save()
        serve = [sys.executable, "-m", "juggernaut.serve", "-b", "0.0.0.0", "-p", str(WEB_PORT)]
        for host in ("web1", "web2"):
            lab.start(host, host, [*serve, "juggernaut.asgi:application"])
        for host in ("jobs1", "jobs2"):
            lab.start(host, host, [sys.executable, "manage.py", "qcluster"])
        cluster_started = time.monotonic()
        _wait_healthy(["web1", "web2"])
        if "events" in PHASES:
            events_phase(lab, raw)
        if "claims" in PHASES:
            claims_phase(lab)
        if "schedules" in PHASES:
            schedules_phase(cluster_started)
    finally:
        from django.db import connections

        with contextlib.suppress(Exception):
            connections.close_all()
        lab.close()


def _wait_healthy(hosts: list[str]) -> None:
    import requests

    deadline = time.monotonic() + 90
    for host in hosts:
        while True:
            try:
                if requests.get(web_url(host) + "/api/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host} did not become healthy")
            time.sleep(0.5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["producer", "claimer", "victim"])
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    if args.role == "producer":
        role_producer()
    elif args.role == "claimer":
        role_claimer(args.name)
    elif args.role == "victim":
        role_victim(args.name)
    else:
        main()
