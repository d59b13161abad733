"""Live fragments: database queries per event batch with 1 and with 20 open Engine pages.

Opens N signed-in HQ websockets on the Engine page through the real ASGI app, lets each receive its
resync, then publishes engine changes from another thread (as a worker or the jobs cluster would) and
counts every query the web process runs until each socket has received the batch's fragments. All of
the web process's database work (relay, subscribers, renders) runs on asgiref's one thread-sensitive
sync thread, so one ``CaptureQueriesContext`` opened on that thread sees all of it.

    .venv/bin/python tests/bench/bench_fragments.py                 # SQLite in a temporary directory
    .venv/bin/python tests/bench/bench_fragments.py --pg postgres://postgres@127.0.0.1:5432/jhq_x_bench

Nothing here asserts anything; it prints the figures.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.common import recreate_database  # noqa: E402

PAGES = [1, 20]
BATCHES = 5


def setup_django(database_url: str) -> None:
    os.environ.update(DEBUG="1", DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="juggernaut.settings")
    os.environ.setdefault("HQ_VAR_DIR", tempfile.mkdtemp(prefix="hq-bench-"))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def seed() -> str:
    """A plausible engine: workers, open and finished tasks. Returns a session cookie for an operator."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from juggernaut.engine import services

    user = get_user_model().objects.create_user("bench", password="x", is_staff=True)
    worker = services.worker_register("bench-1", capabilities=["timer"])
    services.worker_register("bench-2", capabilities=[])
    for i in range(60):
        services.task_create(f"task {i}", kind="noop", priority=i % 5)
    services.task_create("needs a gpu", kind="render", required_capabilities=["gpu"])
    for task in services.task_claim(worker, incarnation=worker.incarnation, limit=20):
        services.task_complete(task.pk, worker_id=worker.pk, incarnation=worker.incarnation, result={})
    services.task_claim(worker, incarnation=worker.incarnation, limit=5)
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def produce(count: int) -> None:
    """Engine changes committed in another thread (its own connection, so not counted)."""
    from django.db import connection

    from juggernaut.engine import services

    def run() -> None:
        for i in range(count):
            services.task_create(f"bench {time.time_ns()} {i}", kind="noop")
        connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


async def measure(pages: int, cookie: str) -> tuple[float, float]:
    """Average queries per batch, and per batch per page, over ``BATCHES`` single-change batches."""
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from juggernaut.asgi import application
    from juggernaut.events.relay import relays_stop

    comms = []
    for _ in range(pages):
        comm = WebsocketCommunicator(
            application, "/ws/hq/?page=engine", headers=[(b"cookie", f"sessionid={cookie}".encode())]
        )
        assert (await comm.connect())[0], "could not open the HQ websocket"
        assert "engine-counts" in await comm.receive_from(timeout=30)  # the resync
        comms.append(comm)

    async def drain(comm) -> None:
        # receive_nothing, unlike a timed-out receive, leaves the connection open.
        while not await comm.receive_nothing(timeout=0.5):
            await comm.receive_from()

    await asyncio.gather(*(drain(c) for c in comms))
    totals = []
    for _ in range(BATCHES):
        capture = CaptureQueriesContext(connection)
        # Entered and left on the sync thread, where the relay, subscribers and renders run.
        await sync_to_async(capture.__enter__)()
        await sync_to_async(produce)(1)
        got = await asyncio.gather(*(c.receive_from(timeout=30) for c in comms))
        await asyncio.sleep(0.3)  # anything else this batch causes
        await sync_to_async(capture.__exit__)(None, None, None)
        assert all("engine-counts" in html for html in got)
        await asyncio.gather(*(drain(c) for c in comms))
        totals.append(await sync_to_async(len)(capture))  # read where the queries were logged
    for comm in comms:
        await comm.disconnect()
    await relays_stop()
    average = sum(totals) / len(totals)
    return average, average / pages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", metavar="URL", help="run on this Postgres database (dropped and created)")
    args = parser.parse_args()
    if args.pg:
        recreate_database(args.pg)
        url = args.pg
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='hq-bench-')}/bench.sqlite3"
    setup_django(url)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    cookie = seed()
    print(f"{connection.vendor}: queries per engine event batch on the web process ({BATCHES} batches)")
    print(f"{'open Engine pages':>18} {'queries/batch':>14} {'per page':>9}")
    for pages in PAGES:
        total, per_page = asyncio.run(measure(pages, cookie))
        print(f"{pages:>18} {total:>14.1f} {per_page:>9.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
