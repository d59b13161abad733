"""Live fragments: database queries per event batch with 1 and with 20 open Engine pages, and on 20
open Overview pages of one operator against 20 operators' (whose code-health line is each their own).

Opens N signed-in HQ websockets on a page through the real ASGI app, lets each receive its resync,
then publishes changes from another thread (as a worker or the jobs cluster would) and counts every
query the web process runs until each socket has received the batch's fragments. All of
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


def operators(count: int) -> list[str]:
    """Session cookies of ``count`` operators, each with a scanned repository of their own."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from codehealth import services
    from codehealth.models import Scan

    cookies = []
    for n in range(count):
        user = get_user_model().objects.create_user(f"op{n}", password="x", is_staff=True)
        repository = services.repository_create(user, github=f"acme/repo-{n}")
        services.scan_record(Scan.objects.create(repository=repository, started_at=timezone.now()), [])
        client = Client()
        client.force_login(user)
        cookies.append(client.cookies["sessionid"].value)
    return cookies


def _engine_change(i: int) -> None:
    from juggernaut.engine import services

    services.task_create(f"bench {time.time_ns()} {i}", kind="noop")


def _codehealth_change(i: int) -> None:
    from codehealth import services
    from codehealth.models import Repository

    services.scan_request(Repository.objects.order_by("pk").first())


def produce(count: int, change=_engine_change) -> None:
    """Changes committed in another thread (its own connection, so not counted)."""
    from django.db import connection

    def run() -> None:
        for i in range(count):
            change(i)
        connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


async def measure(
    pages: int, cookies: list[str], page: str = "engine", change=_engine_change, needle: str = "engine-counts"
) -> tuple[float, float, float]:
    """Average queries per batch, per batch per page, and milliseconds from the change to the last
    socket's fragments, over ``BATCHES`` single-change batches (socket i signs in with cookie i mod n)."""
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from juggernaut.asgi import application
    from juggernaut.events.relay import relays_stop

    comms = []
    for n in range(pages):
        cookie = cookies[n % len(cookies)]
        comm = WebsocketCommunicator(
            application, f"/ws/hq/?page={page}", headers=[(b"cookie", f"sessionid={cookie}".encode())]
        )
        assert (await comm.connect())[0], "could not open the HQ websocket"
        assert needle in await comm.receive_from(timeout=30)  # the resync
        comms.append(comm)

    async def drain(comm) -> None:
        # receive_nothing, unlike a timed-out receive, leaves the connection open.
        while not await comm.receive_nothing(timeout=0.5):
            await comm.receive_from()

    await asyncio.gather(*(drain(c) for c in comms))
    totals, times = [], []
    for _ in range(BATCHES):
        capture = CaptureQueriesContext(connection)
        # Entered and left on the sync thread, where the relay, subscribers and renders run; the log
        # is emptied first, as it keeps only its last 9000 queries.
        await sync_to_async(connection.queries_log.clear)()
        await sync_to_async(capture.__enter__)()
        started = time.perf_counter()
        await sync_to_async(produce)(1, change)
        got = await asyncio.gather(*(c.receive_from(timeout=30) for c in comms))
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.3)  # anything else this batch causes
        await sync_to_async(capture.__exit__)(None, None, None)
        assert all(needle in html for html in got), got[0][:300]
        await asyncio.gather(*(drain(c) for c in comms))
        totals.append(await sync_to_async(len)(capture))  # read where the queries were logged
    for comm in comms:
        await comm.disconnect()
    await relays_stop()
    average = sum(totals) / len(totals)
    return average, average / pages, sorted(times)[len(times) // 2]


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
    print(f"{'open Engine pages':>18} {'queries/batch':>14} {'per page':>9} {'ms p50':>7}")
    for pages in PAGES:
        total, per_page, ms = asyncio.run(measure(pages, [cookie]))
        print(f"{pages:>18} {total:>14.1f} {per_page:>9.1f} {ms:>7.0f}")
        sys.stdout.flush()
    print()
    print("20 open Overview pages: one operator's (a shared render) against 20 operators' (the code-health")
    print("line is each viewer's own: a batch it follows renders once per viewer)")
    print(f"{'event':>11} {'viewers':>8} {'queries/batch':>14} {'per page':>9} {'ms p50':>7}")
    many = operators(20)
    for label, change, needle in (
        ("engine", _engine_change, "hq-area-engine"),
        ("codehealth", _codehealth_change, "hq-area-codehealth"),
    ):
        for viewers in (many[:1], many):
            total, per_page, ms = asyncio.run(measure(20, viewers, "overview", change, needle))
            print(f"{label:>11} {len(viewers):>8} {total:>14.1f} {per_page:>9.1f} {ms:>7.0f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
