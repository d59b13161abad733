"""Connection benchmark: a burst of concurrent API GETs through a real daphne on Postgres.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jhq_bench .venv/bin/python tests/bench/bench_connections.py

The script recreates that database, fills it, then for each configuration starts daphne, fires
``BENCH_CONCURRENCY`` (200) simultaneous ``GET /api/engine/tasks`` with a read token, ``BENCH_ROUNDS``
times, while sampling ``pg_stat_activity`` for the connections the server holds. The peer in the same
run is the server without a connection pool (``DATABASE_POOL_MAX_SIZE=0``: one connection per request
in flight, the old behaviour). It prints errors by status, p50/p95 latency, the most connections held,
and whether an outside client could still connect during the burst. It asserts nothing about time.
"""

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.common import admin_url, drop_database, pct, recreate_database  # noqa: E402

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PORT = int(os.environ.get("BENCH_PORT", "8150"))
# (label, environment for the server); an empty value means "the setting's default".
CONFIGS = [
    ("no pool (one connection per request)", {"DATABASE_POOL_MAX_SIZE": "0"}),
    ("pool (defaults)", {}),
]


def manage(env: dict, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout


SEED = """
from django.contrib.auth import get_user_model
from juggernaut.engine.models import Task
from juggernaut.models import ApiToken
user = get_user_model().objects.create_user("bench", is_staff=True)
token, raw = ApiToken.generate(name="bench", user=user, scopes=["read"], days=1)
token.save()
Task.objects.bulk_create([Task(title=f"task {i}", kind="noop") for i in range(200)])
print(raw)
"""


def sample_connections(url: str, stop: threading.Event, peak: list[int]) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        while not stop.is_set():
            (count,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [name]
            ).fetchone()
            peak[0] = max(peak[0], count)
            time.sleep(0.01)


def outside_client(url: str, results: list[str]) -> None:
    """Another program on the same Postgres server tries to connect mid-burst."""
    time.sleep(0.3)
    try:
        with psycopg.connect(admin_url(url), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
        results.append("ok")
    except psycopg.Error as exc:
        results.append(str(exc).strip().splitlines()[0][:60])


def burst(base: str, raw: str) -> list[tuple[int, float]]:
    session_local = threading.local()
    barrier = threading.Barrier(CONCURRENCY)
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def one() -> None:
        session = getattr(session_local, "s", None) or requests.Session()
        session_local.s = session
        barrier.wait()
        t0 = time.perf_counter()
        try:
            status = session.get(
                base + "/api/engine/tasks?limit=20",
                headers={"Authorization": f"Bearer {raw}"},
                timeout=60,
            ).status_code
        except requests.RequestException:
            status = 0
        with lock:
            results.append((status, time.perf_counter() - t0))

    threads = [threading.Thread(target=one) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def run_config(url: str, env: dict, raw: str, extra: dict) -> dict:
    base = f"http://127.0.0.1:{PORT}"
    server_env = {**env, **extra}
    log = open(ROOT / "var" / "bench-daphne.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(PORT), "juggernaut.asgi:application"],
        cwd=ROOT,
        env=server_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/api/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        peak = [0]
        outside: list[str] = []
        for _ in range(ROUNDS):
            stop = threading.Event()
            sampler = threading.Thread(target=sample_connections, args=(url, stop, peak))
            other = threading.Thread(target=outside_client, args=(url, outside))
            sampler.start()
            other.start()
            results = burst(base, raw)
            other.join()
            stop.set()
            sampler.join()
            statuses.update(s for s, _ in results)
            latencies += [d for s, d in results if s == 200]
            time.sleep(1)
        return {
            "statuses": statuses,
            "p50": pct(latencies, 0.5),
            "p95": pct(latencies, 0.95),
            "peak": peak[0],
            "outside": Counter(outside),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def main() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL=postgres://… (the database is recreated and dropped)")
    env = dict(
        os.environ,
        DEBUG="0",
        SECRET_KEY="bench-only-secret-key-" + "x" * 40,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="ERROR",
    )
    recreate_database(url)
    try:
        manage(env, "migrate", "--verbosity", "0")
        raw = manage(env, "shell", "-c", SEED).strip().splitlines()[-1]
        (max_conn,) = psycopg.connect(admin_url(url)).execute("SHOW max_connections").fetchone()
        print(f"{CONCURRENCY} concurrent GET /api/engine/tasks × {ROUNDS} rounds, max_connections={max_conn}")
        print(
            f"{'server':40} {'ok':>5} {'errors':>24} {'p50 ms':>8} {'p95 ms':>8} {'max conns':>10}  outside client"
        )
        for label, extra in CONFIGS:
            r = run_config(url, env, raw, extra)
            ok = r["statuses"].pop(200, 0)
            errors = ", ".join(f"{n}×{s or 'conn'}" for s, n in sorted(r["statuses"].items())) or "0"
            outside = ", ".join(f"{n}× {k}" for k, n in r["outside"].items())
            print(
                f"{label:40} {ok:>5} {errors:>24} {r['p50'] * 1000:>8.0f} {r['p95'] * 1000:>8.0f} "
                f"{r['peak']:>10}  {outside}"
            )
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
