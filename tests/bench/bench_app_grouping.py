"""Application errors: grouping accuracy on the fixture set of every format, next to Drain3, and the
rate of the ingest path, online (``ndjson_ingest``, storing) and offline (``fingerprint_file --ndjson``).

Drain3 gets the events already folded by our folder (it has no folder of its own), one text each.
The set is repeated ``REPEAT`` times, each copy an hour later, for the rates.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/jhq_grouping_bench \\
        .venv/bin/python tests/bench/bench_app_grouping.py

It migrates the database it is given and empties the logs tables first; nothing asserts about time.
"""

import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("DEBUG", "1")
os.environ["DJANGO_SETTINGS_MODULE"] = "juggernaut.settings"
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from logscrawler.ingest import ndjson_fingerprint, ndjson_ingest  # noqa: E402
from logscrawler.pipeline import events_fold  # noqa: E402
from tests.bench.bench_fingerprint import drain3_default, drain3_example  # noqa: E402
from tests.logscrawler.appevents.events import event_accuracy, records  # noqa: E402

REPEAT = 40


def drain3_accuracy(factory) -> float:
    """Drain3 on our folded events: each record gets the cluster of the event it was folded into."""
    lines, expected = records()
    per_service: dict[str, list[int]] = {}
    for index, record in enumerate(lines):
        per_service.setdefault(record["service"], []).append(index)
    clusters = [""] * len(lines)
    miner = factory()
    for indices in per_service.values():
        fields = [(lines[i]["message"], lines[i].get("severity"), {}, None) for i in indices]
        for members, event in events_fold(fields):
            cluster = str(miner.add_log_message(event.text)["cluster_id"]) if event.is_error else ""
            for member in members:
                clusters[indices[member]] = cluster
    return event_accuracy(expected, clusters)


def copies() -> tuple[list[bytes], int]:
    lines, expected = records()
    events = len({item[0] for item in expected if item}) + expected.count(None)
    out = []
    for copy in range(REPEAT):
        for record in lines:
            stamp = datetime.fromisoformat(record["timestamp"]) + timedelta(hours=copy)
            out.append(json.dumps({**record, "timestamp": stamp.isoformat()}).encode())
    return out, events * REPEAT


def main() -> None:
    lines, expected = records()
    ours = event_accuracy(expected, ndjson_fingerprint(json.dumps(r).encode() for r in lines)[0])
    print(f"fixture set: {len({i[0] for i in expected if i})} error events, {len(lines)} records")
    print(
        f"  grouping accuracy (events)  ours {ours:.3f}  drain3 default {drain3_accuracy(drain3_default):.3f}"
        f"  drain3 example masks {drain3_accuracy(drain3_example):.3f}"
    )
    body, events = copies()
    started = time.perf_counter()
    ndjson_fingerprint(body)
    offline = time.perf_counter() - started
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE railway_logs, error_occurrences, error_rollups_minute, log_alerts, error_fingerprints, "
            "log_services RESTART IDENTITY CASCADE"
        )
    started = time.perf_counter()
    summary = ndjson_ingest(body)
    online = time.perf_counter() - started
    print(f"rates over {events} events ({len(body)} records, {summary.accepted} accepted)")
    print(f"  fingerprint_file --ndjson  {events / offline:8,.0f} events/s")
    print(f"  ingest (stored)            {events / online:8,.0f} events/s")


if __name__ == "__main__":
    main()
