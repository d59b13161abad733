"""Self-heal: diagnosis wall time at production size, next to the same checks run one after another,
and the share of injected faults that one repair fixes and verifies.

Data (on its own throwaway Postgres database, loaded with ``generate_series``): 1,000,000 tasks, 200 live
workers, 500 error fingerprints whose per-minute rollups stand for 10,000,000 occurrences over a day
(the errors check reads the rollups, as the logs crawler does), and OpenRouter, Railway and GitHub fakes
that each answer after ``SLOW_SECONDS``.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/jhq_selfheal_bench .venv/bin/python tests/bench/bench_selfheal.py

Nothing asserts about time; it prints its figures.
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jhq_selfheal_bench")
os.environ["DJANGO_SETTINGS_MODULE"] = "juggernaut.settings"
sys.path.insert(0, str(ROOT))

from tests.bench.common import drop_database, pct, recreate_database  # noqa: E402

recreate_database(os.environ["DATABASE_URL"])

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from juggernaut import schedules  # noqa: E402
from juggernaut.healing import registry_load  # noqa: E402
from selfheal import services  # noqa: E402
from tests.fakes.server import FakeServer  # noqa: E402

TASKS = int(os.environ.get("BENCH_TASKS", 1_000_000))
OCCURRENCES = int(os.environ.get("BENCH_OCCURRENCES", 10_000_000))
FINGERPRINTS = 500
WORKERS = 200
SLOW_SECONDS = 0.3
RUNS = 10
FAULTS = {
    "expired_leases": 100,
    "unblockable": 50,
    "requeueable": 20,
    "untracked_errors": 10,
    "stopped_schedule": 1,
}


class Slow(BaseHTTPRequestHandler):
    """OpenRouter's GET /key, GitHub's GET /rate_limit and Railway's GraphQL POST, each after a pause."""

    def log_message(self, *args) -> None:
        return

    def _answer(self, data: dict) -> None:
        time.sleep(SLOW_SECONDS)
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("X-RateLimit-Limit", "5000")
        self.send_header("X-RateLimit-Remaining", "4900")
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._answer({"data": {"label": "k", "limit": 20, "limit_remaining": 10, "usage": 10}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer({"data": {"projects": {"edges": []}}})


def insert_defaults(table: str, values: dict[str, str], rows: int) -> None:
    """INSERT ``rows`` rows of generate_series, every other NOT NULL column given a neutral value."""
    with connection.cursor() as c:
        c.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
            "AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'",
            [table],
        )
        neutral = {
            "integer": "0",
            "bigint": "0",
            "smallint": "0",
            "boolean": "false",
            "jsonb": "'[]'::jsonb",
            "uuid": "gen_random_uuid()",
            "timestamp with time zone": "now()",
            "date": "current_date",
            "numeric": "0",
        }
        cols = dict(values)
        for name, kind in c.fetchall():
            cols.setdefault(name, neutral.get(kind, "''"))
        names = ", ".join(f'"{n}"' for n in cols)
        c.execute(
            f"INSERT INTO {table} ({names}) SELECT {', '.join(cols.values())} "
            f"FROM generate_series(1, {rows}) AS g"
        )


def load() -> None:
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    schedules.schedules_sync()
    insert_defaults(
        "engine_workers",
        {
            "name": "'w' || g",
            "kinds": """'["*"]'::jsonb""",
            "capabilities": """'["python"]'::jsonb""",
            "concurrency": "1",
        },
        WORKERS,
    )
    insert_defaults(
        "engine_tasks",
        {
            "title": "'task ' || g",
            "kind": "'noop'",
            "payload": "'{}'::jsonb",
            "required_capabilities": "'[]'::jsonb",
            "status": "CASE WHEN g % 20 = 0 THEN 'pending' ELSE 'done' END",
            "source": "'operator'",
            "max_attempts": "3",
            "timeout_seconds": "600",
            "priority": "0",
            "created_at": "now() - (g || ' seconds')::interval",
        },
        TASKS,
    )
    with connection.cursor() as c:
        c.execute(
            "INSERT INTO log_services (name, railway_service_id, railway_environment_id, railway_project_id,"
            " railway_deployment_id, backfilled_deployment_id, created_at) VALUES ('api','','','','','',now())"
        )
    insert_defaults(
        "error_fingerprints",
        {
            "service_id": "(SELECT id FROM log_services LIMIT 1)",
            "key": "md5(g::text)",
            "grouping_version": "'1'",
            "template": "'error ' || g",
            "tokens": "'[]'::jsonb",
            "status": "'acknowledged'",
            "count": str(OCCURRENCES // FINGERPRINTS),
            "first_seen": "now() - interval '1 day'",
            "last_seen": "now()",
        },
        FINGERPRINTS,
    )
    per_minute = max(OCCURRENCES // (FINGERPRINTS * 1440), 1)
    # the remainder spread one each over a fingerprint's first minutes, so the rows sum to OCCURRENCES
    extra = max(OCCURRENCES - per_minute * FINGERPRINTS * 1440, 0) // FINGERPRINTS
    with connection.cursor() as c:
        c.execute(f"""INSERT INTO error_rollups_minute (fingerprint_id, service_id, minute, count)
            SELECT f.id, f.service_id, date_trunc('minute', now()) - (m || ' minutes')::interval,
                   {per_minute} + CASE WHEN m <= {extra} THEN 1 ELSE 0 END
            FROM error_fingerprints f, generate_series(1, 1440) AS m""")
        c.execute("ANALYZE")
    print(
        f"loaded {TASKS:,} tasks, {WORKERS} workers, {FINGERPRINTS * 1440:,} rollup rows standing for "
        f"{FINGERPRINTS * (1440 * per_minute + extra):,} occurrences in {time.perf_counter() - started:.0f} s"
    )


def inject() -> None:
    """The faults a repair claims to handle."""
    with connection.cursor() as c:
        c.execute(f"""UPDATE engine_tasks SET status = 'running', lease_owner_id = (SELECT min(id) FROM engine_workers),
            lease_incarnation = gen_random_uuid(), lease_expires_at = now() - interval '5 minutes', attempts = 1
            WHERE id IN (SELECT id FROM engine_tasks WHERE status = 'done' ORDER BY id LIMIT {FAULTS["expired_leases"]})""")
        c.execute(f"""UPDATE engine_tasks SET status = 'blocked', reason_code = 'no_capable_worker'
            WHERE id IN (SELECT id FROM engine_tasks WHERE status = 'done' ORDER BY id LIMIT {FAULTS["unblockable"]})""")
        c.execute(f"""UPDATE engine_tasks SET status = 'failed', attempts = 1
            WHERE id IN (SELECT id FROM engine_tasks WHERE status = 'done' ORDER BY id LIMIT {FAULTS["requeueable"]})""")
        c.execute(f"""UPDATE error_fingerprints SET status = 'new'
            WHERE id IN (SELECT id FROM error_fingerprints ORDER BY id LIMIT {FAULTS["untracked_errors"]})""")
        c.execute("UPDATE django_q_schedule SET repeats = 0 WHERE name = 'hq:engine-tick'")
        c.execute("UPDATE engine_workers SET last_heartbeat = now() + interval '1 hour'")


def sequential() -> float:
    checks, _ = registry_load()
    started = time.perf_counter()
    now = timezone.now()
    for name in services._check_names():
        checks[name].func(now)
    return time.perf_counter() - started


def main() -> None:
    load()
    inject()
    with FakeServer(Slow) as fake:
        settings.OPENROUTER_BASE_URL = fake.url
        settings.OPENROUTER_API_KEY = "sk-bench"
        settings.RAILWAY_API_URL = fake.url
        settings.RAILWAY_TOKEN = "bench"
        settings.GITHUB_API_URL = fake.url
        settings.SELFHEAL_MAX_ROWS_PER_RUN = 1000
        concurrent, serial, checks = [], [], {}
        for _ in range(RUNS):
            started = time.perf_counter()
            report = services.checks_run()
            concurrent.append(time.perf_counter() - started)
            for c in report["checks"]:
                checks.setdefault(c["name"], []).append(c["duration_ms"])
            serial.append(sequential())
        statuses = {c["name"]: c["status"] for c in report["checks"]}
        before = len(report["findings"])
        print(f"diagnosis ({len(statuses)} checks, fakes answering after {SLOW_SECONDS} s):")
        print(
            f"  concurrent  p50 {pct(concurrent, 0.5) * 1000:7.0f} ms  p95 {pct(concurrent, 0.95) * 1000:7.0f} ms"
        )
        print(
            f"  sequential  p50 {pct(serial, 0.5) * 1000:7.0f} ms  p95 {pct(serial, 0.95) * 1000:7.0f} ms  (peer)"
        )
        print(
            "  each check's own time in the concurrent run, p50 (ms): "
            + ", ".join(f"{n} {pct(v, 0.5):.0f}" for n, v in sorted(checks.items()))
        )
        print(f"  statuses: {statuses}; {before} findings")
        ex = services.repair_run(actor="bench")
        v = ex.verification
        targets = len(v["targets"])
        fixed = targets - len(v["targets_remaining"])
        print(
            f"repair #{ex.pk} {ex.status} in {ex.duration_ms} ms, {ex.touched} rows touched: "
            f"{fixed} of {targets} injected fault findings fixed and verified ({fixed / max(targets, 1):.0%}); "
            f"{len(v['new'])} new"
        )
        for step in ex.steps:
            print(f"  {step['name']}: {step['status']}, {step['output']}")
        for what in ("remaining", "new"):
            for f in v[what]:
                print(f"  {what}: {f['title']}")
    connection.close()
    drop_database(os.environ["DATABASE_URL"])


if __name__ == "__main__":
    main()
