"""Logs storage: end-to-end ingestion rate, and "top errors" latency at millions of occurrences.

1. Ingestion: 20,000 lines (a fifth of them errors of 40 kinds) through ``logs_ingest`` in batches of
   1,000 (parse, fold, fingerprint, store, count, alert), next to a plain ``bulk_create`` of the same
   rows (no parsing, no fingerprints) as the floor, in the same run.
2. Top errors: per-minute rollups standing for 10,000,000 occurrences of 500 fingerprints over a day,
   ``top_errors("1h")`` and ``top_errors("24h")`` p50/p95, next to the same question asked of a raw
   ``error_occurrences`` table of 1,000,000 rows (GROUP BY), in the same run.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/jhq_logs .venv/bin/python tests/bench/bench_logs.py

It migrates the database it is given and empties the logs tables first; nothing asserts about time.
"""

import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jhq_logs")
os.environ["DJANGO_SETTINGS_MODULE"] = "juggernaut.settings"
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from logscrawler import services  # noqa: E402
from logscrawler.models import LogLine, LogService  # noqa: E402
from logscrawler.services import Record  # noqa: E402

LINES = 20_000
BATCH = 1_000
OCCURRENCES = 10_000_000
FINGERPRINTS = 500
RAW_OCCURRENCES = 1_000_000


def reset() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE railway_logs, error_occurrences, error_rollups_minute, log_alerts, error_fingerprints, "
            "log_services RESTART IDENTITY CASCADE"
        )


def lines(now: datetime) -> list[Record]:
    out = []
    for i in range(LINES):
        ts = now - timedelta(seconds=(LINES - i) * 0.1)
        if i % 5 == 0:
            kind = i % 40
            out.append(
                Record(
                    ts,
                    f"job {i} failed in step{kind} after {i % 97} retries: code {kind}",
                    "error",
                    source_id=f"b{i}",
                )
            )
        else:
            out.append(Record(ts, f"GET /items/{i} 200 in {i % 50} ms", "info", source_id=f"b{i}"))
    return out


def bench_ingest() -> None:
    now = timezone.now()
    records = lines(now)
    reset()
    service = LogService.objects.create(name="bench")
    started = time.perf_counter()
    for start in range(0, LINES, BATCH):
        services.logs_ingest(service, records[start : start + BATCH], now=now)
    ours = time.perf_counter() - started
    reset()
    service = LogService.objects.create(name="bench")
    started = time.perf_counter()
    for start in range(0, LINES, BATCH):
        LogLine.objects.bulk_create(
            [
                LogLine(
                    service=service,
                    timestamp=r.timestamp,
                    received_at=now,
                    message=r.message,
                    severity=r.severity,
                    dedupe=r.source_id,
                )
                for r in records[start : start + BATCH]
            ]
        )
    floor = time.perf_counter() - started
    print(f"ingestion, {LINES} lines in batches of {BATCH} ({connection.vendor})")
    print(f"  logs_ingest (parse, fold, fingerprint, store, rollups, alerts) {LINES / ours:10,.0f} lines/s")
    print(f"  bulk_create of the bare rows (the floor)                        {LINES / floor:10,.0f} lines/s")


def timed(call, runs: int = 15) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def bench_top_errors() -> None:
    reset()
    now = timezone.now().replace(second=0, microsecond=0)
    with connection.cursor() as cursor:
        for name in ("s1", "s2"):
            LogService.objects.create(name=name)
        cursor.execute(
            'INSERT INTO error_fingerprints (service_id, key, grouping_version, template, tokens, "order", general,'
            " exception_type, sample, status, count, first_seen, last_seen, created_at)"
            " SELECT 1 + g %% 2, 'k' || g, '1', 'error kind ' || g, '[]', g, false, '', '', 'new', 0, %s, %s, now()"
            " FROM generate_series(1, %s) g",
            [now - timedelta(days=1), now, FINGERPRINTS],
        )
        # every fingerprint, every minute of the day; counts skewed so a few dominate
        per_row = OCCURRENCES // (FINGERPRINTS * 1440)
        cursor.execute(
            "INSERT INTO error_rollups_minute (fingerprint_id, service_id, minute, count)"
            " SELECT f, 1 + f %% 2, %s - (m * interval '1 minute'), greatest(1, %s * 2 * (f %% 7) / 6)"
            " FROM generate_series(1, %s) f, generate_series(0, 1439) m",
            [now, per_row, FINGERPRINTS],
        )
        cursor.execute("SELECT sum(count), count(*) FROM error_rollups_minute")
        total, rows = cursor.fetchone()
        cursor.execute(
            "CREATE TEMP TABLE raw_occ AS SELECT 1 + g %% %s AS fingerprint_id, "
            "%s::timestamptz - (g %% 86400) * interval '1 second' AS ts FROM generate_series(1, %s) g",
            [FINGERPRINTS, now, RAW_OCCURRENCES],
        )
        cursor.execute("CREATE INDEX ON raw_occ (ts)")
        # what autovacuum does to a table this size soon after a bulk load (index-only scans need it)
        cursor.execute("VACUUM ANALYZE error_rollups_minute")
        cursor.execute("ANALYZE")
    print(
        f"\ntop errors, rollups standing for {total:,} occurrences ({rows:,} minute rows, {FINGERPRINTS} fingerprints)"
    )
    for window in ("1h", "24h"):
        p50, p95 = timed(lambda w=window: services.top_errors(w, now=now))
        print(f"  top_errors({window!r}) from rollups          p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")

    def raw(hours: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT fingerprint_id, count(*) FROM raw_occ WHERE ts >= %s GROUP BY fingerprint_id "
                "ORDER BY 2 DESC LIMIT 50",
                [now - timedelta(hours=hours)],
            )
            cursor.fetchall()

    for hours in (1, 24):
        p50, p95 = timed(lambda h=hours: raw(h))
        print(
            f"  GROUP BY over {RAW_OCCURRENCES:,} raw occurrences, {hours:2}h  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"
        )
    reset()


def main() -> None:
    call_command("migrate", verbosity=0)
    bench_ingest()
    if connection.vendor == "postgresql":
        bench_top_errors()
    else:
        print("\ntop errors: run on PostgreSQL (DATABASE_URL=postgres://…) for this part")


if __name__ == "__main__":
    main()
