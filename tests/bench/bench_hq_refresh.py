"""HQ refresh benchmark: the cost of keeping time-based states true on an open page.

    DEBUG=1 .venv/bin/python tests/bench/bench_hq_refresh.py            # SQLite, in a temp directory
    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/jhq_bench_refresh .venv/bin/python tests/bench/bench_hq_refresh.py

What an open page pays every HQ_REFRESH_SECONDS with the websocket timer (re-render the page's
time-dependent fragments in the web process, send only when they changed), against the peer
design: htmx polling, where the browser GETs the page (session, middleware, full render) each time.
It prints figures and asserts nothing about time.
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))


def setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HQ_VAR_DIR", tempfile.mkdtemp(prefix="hq-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "juggernaut.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def arrange() -> None:
    """A busy engine: 200 open tasks, 5 workers, one waiting for approval, one escalated."""
    from juggernaut.engine import services
    from juggernaut.engine.models import Task

    workers = [services.worker_register(f"w{i}", capabilities=["timer"]) for i in range(5)]
    Task.objects.bulk_create([Task(title=f"task {i}", kind="noop") for i in range(200)])
    services.task_claim(workers[0], incarnation=workers[0].incarnation, limit=3)
    services.task_create("Ship 2.4", kind="noop", needs_approval=True)
    failing = services.task_create("Catalog", kind="noop", max_attempts=1, priority=100)
    claimed = services.task_claim(workers[1], incarnation=workers[1].incarnation)[0]
    assert claimed.pk == failing.pk
    services.task_fail(failing.pk, worker_id=workers[1].pk, incarnation=workers[1].incarnation, error="boom")


def timed(func) -> tuple[list[float], int]:
    samples, size = [], 0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        size = len(func())
        samples.append((time.perf_counter() - start) * 1000)
    return samples, size


def line(name: str, samples: list[float], size: int) -> str:
    q = statistics.quantiles(samples, n=20)
    return (
        f"{name:<44} p50 {statistics.median(samples):6.2f} ms   p95 {q[18]:6.2f} ms   {size / 1024:6.1f} KiB"
    )


def main() -> None:
    setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from juggernaut import hq
    from juggernaut.events.consumers import AGES

    arrange()
    user = get_user_model().objects.create_user("bench", "b@example.com", "x", is_staff=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    print(f"database: {connection.vendor}; {ROUNDS} rounds; an open page refreshes every 2 s by default")
    for page, url in [("overview", "/"), ("engine", "/engine/")]:
        ws, ws_size = timed(lambda page=page: hq.render_timed(page))
        first = hq.render_timed(page)
        unchanged = AGES.sub(r"\1\2", first) == AGES.sub(r"\1\2", hq.render_timed(page))
        assert client.get(url).status_code == 200
        poll, poll_size = timed(lambda url=url: client.get(url).content)
        print(line(f"{page}: websocket timer, render", ws, ws_size))
        print(f"{'':<44} sent when unchanged: {'no (0 bytes)' if unchanged else 'yes'}")
        print(line(f"{page}: peer, htmx polling GET {url}", poll, poll_size))


if __name__ == "__main__":
    main()
