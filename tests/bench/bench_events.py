"""Event latency: from ``publish()`` commit in another process to receipt by websocket clients.

Prints p50/p95 with 1 and with 200 connected clients, on SQLite and (when reachable) on Postgres,
and, as the floor, a bare Channels ``group_send`` to the same consumers in the same run.

    .venv/bin/python tests/bench/bench_events.py            # both databases
    .venv/bin/python tests/bench/bench_events.py --db sqlite

Each database run is its own process with a fresh database; nothing here asserts anything about time.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.common import pct, recreate_database  # noqa: E402

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/jhq_bench_events")
EVENTS = 150
RATE_PER_SECOND = 25


def setup_django(database_url: str) -> None:
    os.environ.update(DEBUG="1", DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="juggernaut.settings")
    os.environ.setdefault("HQ_VAR_DIR", tempfile.mkdtemp(prefix="hq-bench-"))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def producer_main(database_url: str, topic: str, count: int) -> None:
    """Runs in its own process, like the jobs cluster or an engine worker would."""
    setup_django(database_url)
    from juggernaut.events import publish

    committed = {}
    for i in range(count):
        event = publish(topic, "bench", {"i": i})
        committed[event.seq] = time.time()  # publish() has returned: the transaction is committed
        time.sleep(1 / RATE_PER_SECOND)
    print(json.dumps(committed))


async def measure(clients: int, database_url: str, topic: str) -> tuple[list[float], list[float]]:
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model

    from juggernaut.asgi import application
    from juggernaut.events import group_name
    from juggernaut.events.relay import relays_stop
    from juggernaut.models import ApiToken

    user_model = get_user_model()

    def make_token() -> str:
        user, _ = user_model.objects.get_or_create(username="bench", defaults={"is_staff": True})
        token, raw = ApiToken.generate(name="bench", user=user, scopes=["read"], days=1)
        token.save()
        return raw

    raw = await sync_to_async(make_token)()
    comms = []
    for _ in range(clients):
        comm = WebsocketCommunicator(
            application, "/ws/events/", headers=[(b"authorization", f"Bearer {raw}".encode())]
        )
        assert (await comm.connect())[0]
        await comm.send_json_to({"subscribe": [topic]})
        assert "subscribed" in json.loads(await comm.receive_from(timeout=10))
        comms.append(comm)

    received: list[dict[int, float]] = [{} for _ in comms]

    async def reader(index: int, comm, count: int, key: str) -> None:
        while len(received[index]) < count:
            message = json.loads(await comm.receive_from(timeout=60))
            received[index][message[key]] = time.time()

    # The floor: group_send straight onto the consumers' group, no database involved.
    layer = get_channel_layer()
    floor_sent: dict[int, float] = {}
    readers = [asyncio.create_task(reader(i, c, EVENTS, "seq")) for i, c in enumerate(comms)]
    for n in range(1, EVENTS + 1):
        envelope = {"v": 1, "seq": n, "topic": topic, "type": "floor", "ts": "", "run_id": None, "data": {}}
        floor_sent[n] = time.time()
        await layer.group_send(
            group_name(topic), {"type": "events.batch", "topic": topic, "events": [envelope]}
        )
        await asyncio.sleep(1 / RATE_PER_SECOND)
    await asyncio.gather(*readers)
    floor = [got[seq] - floor_sent[seq] for got in received for seq in got]

    # The real path: another process publishes; the relay notices and fans out.
    real_topic = topic + "-db"
    for comm in comms:
        await comm.send_json_to({"subscribe": [real_topic], "unsubscribe": [topic]})
        assert "subscribed" in json.loads(await comm.receive_from(timeout=10))
    received = [{} for _ in comms]
    readers = [asyncio.create_task(reader(i, c, EVENTS, "seq")) for i, c in enumerate(comms)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--produce",
        database_url,
        real_topic,
        str(EVENTS),
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    out, _ = await proc.communicate()
    committed = {int(k): v for k, v in json.loads(out.decode().strip().splitlines()[-1]).items()}
    await asyncio.gather(*readers)
    real = [got[seq] - committed[seq] for got in received for seq in got]
    for comm in comms:
        await comm.disconnect()
    await relays_stop()
    return real, floor


def run_backend(name: str, database_url: str) -> None:
    setup_django(database_url)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    print(
        f"\n{name} ({connection.vendor}), {EVENTS} events at {RATE_PER_SECOND}/s, relay poll "
        f"{settings.EVENTS_POLL_SECONDS}s"
    )
    print(f"{'clients':>8} {'path':<28} {'p50 ms':>8} {'p95 ms':>8} {'samples':>8}")
    for clients in (1, 200):
        real, floor = asyncio.run(measure(clients, database_url, f"bench-{clients}"))
        for label, values in (("publish() commit -> ws", real), ("bare group_send -> ws", floor)):
            print(
                f"{clients:>8} {label:<28} {pct(values, 0.5) * 1000:>8.2f} {pct(values, 0.95) * 1000:>8.2f}"
                f" {len(values):>8}"
            )
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--backend", nargs=2, metavar=("NAME", "URL"))
    parser.add_argument("--produce", nargs=3, metavar=("URL", "TOPIC", "COUNT"))
    args = parser.parse_args()
    if args.produce:
        producer_main(args.produce[0], args.produce[1], int(args.produce[2]))
        return
    if args.backend:
        run_backend(*args.backend)
        return
    targets = []
    if args.db in ("sqlite", "both"):
        targets.append(("SQLite", f"sqlite:///{tempfile.mkdtemp(prefix='hq-bench-')}/bench.sqlite3"))
    if args.db in ("postgres", "both"):
        try:
            recreate_database(PG_URL)
            targets.append(("PostgreSQL", PG_URL))
        except Exception as exc:  # a missing server skips that half, saying why
            print(f"PostgreSQL not reachable ({exc}) - skipping it")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores; statistics over every (client, event) pair"
    )
    for name, url in targets:
        subprocess.run(
            [sys.executable, __file__, "--backend", name, url],
            check=True,
            env={**os.environ, "HQ_VAR_DIR": tempfile.mkdtemp(prefix="hq-bench-")},
        )


if __name__ == "__main__":
    main()
