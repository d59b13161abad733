"""Chat benchmark: message → ``run_started`` latency for each way a run can execute, on SQLite and Postgres.

    DEBUG=1 .venv/bin/python tests/bench/bench_chat.py                     # SQLite
    DEBUG=1 BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/jhq_bench_chat .venv/bin/python tests/bench/bench_chat.py

It creates its own database (a temporary SQLite file; the Postgres database is created and dropped),
answers every model call from the fake OpenRouter, and starts the runner as ``make run`` does:

- ``jobs``: ``manage.py qcluster`` (django-q2 on its ORM broker, ``poll`` 0.5 s);
- ``engine``: ``manage.py engine_worker --name builtin`` (Postgres ``LISTEN``, else polling every 2 s);

then sends BENCH_MESSAGES messages, one at a time, each when the previous run has stopped, at
random moments. Latency is the ``run_started`` event's time minus the run's creation in the request,
both read from the database. Then it streams 1,000 tokens through one run and counts what was
written. It prints figures and asserts nothing about time.
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.common import drop_database, pct, recreate_database  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "20"))
RUNNERS = {
    "jobs": ["qcluster"],
    "engine": ["engine_worker", "--name", "builtin"],
}


def child_env(database_url: str, var_dir: str, fake_url: str, api_key: str, runner: str) -> dict:
    return dict(
        os.environ,
        DEBUG="1",
        DATABASE_URL=database_url,
        HQ_VAR_DIR=var_dir,
        LOG_LEVEL="WARNING",
        OPENROUTER_BASE_URL=fake_url,
        OPENROUTER_API_KEY=api_key,
        CHAT_RUNNER=runner,
    )


def measure(database_url: str, label: str) -> dict[str, list[float]]:
    var_dir = tempfile.mkdtemp(prefix="bench-chat-")
    if database_url.startswith("postgres"):
        recreate_database(database_url)
    else:
        database_url = f"sqlite:///{var_dir}/bench.sqlite3"
    from tests.fakes.openrouter import FakeOpenRouter, Reply

    figures: dict[str, list[float]] = {}
    with FakeOpenRouter() as fake:
        fake.default = Reply(text="Nothing is failing.")
        env = child_env(database_url, var_dir, fake.url, fake.api_key, "jobs")
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "juggernaut.settings"
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connections

        from chat import services
        from chat.models import ChatRun
        from juggernaut.models import Event

        user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
        for runner, command in RUNNERS.items():
            settings.CHAT_RUNNER = runner
            proc = subprocess.Popen(
                [sys.executable, "manage.py", *command],
                cwd=ROOT,
                env=child_env(database_url, var_dir, fake.url, fake.api_key, runner),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                session = services.session_create(user, mode="normal", title=f"bench {runner}")
                latencies = []
                for i in range(MESSAGES + 1):  # the first one warms the runner up
                    time.sleep(random.uniform(0.05, 0.6))
                    run = services.message_send(session, content=f"question {i}", user=user)
                    deadline = time.monotonic() + 60
                    while not ChatRun.objects.filter(pk=run.pk, status="stopped").exists():
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{runner}: run {run.pk} did not stop")
                        time.sleep(0.01)
                    started = Event.objects.get(topic=run.topic, type="run_started").ts
                    if i:
                        latencies.append((started - run.created_at).total_seconds() * 1000)
                figures[runner] = latencies
            finally:
                proc.terminate()
                proc.wait(20)
        streamed_tokens(fake, user, label)
        connections.close_all()
    if database_url.startswith("postgres"):
        drop_database(database_url)
    shutil.rmtree(var_dir, ignore_errors=True)
    for runner, values in figures.items():
        print(
            f"{label:8} {runner:7} message → run_started over {len(values)} runs: p50 {pct(values, 0.5):7.1f} ms"
            f"  p95 {pct(values, 0.95):7.1f} ms  max {max(values):7.1f} ms"
        )
    return figures


def streamed_tokens(fake, user, label: str, tokens: int = 1000) -> None:
    """What 1,000 streamed tokens write: events and rows, next to one row per token."""
    from django.conf import settings

    from chat import services
    from chat.loop import run_execute
    from chat.models import ChatMessage, ChatRun
    from juggernaut.models import Event
    from tests.fakes.openrouter import Reply

    settings.CHAT_RUNNER = "manual"
    fake.script(Reply(text=" tok" * tokens, fragment=4, chunk_delay=0.004))  # one token per chunk, ~250/s
    session = services.session_create(user, mode="normal", title="bench tokens")
    events_before, messages_before = Event.objects.count(), ChatMessage.objects.count()
    run = services.message_send(session, content="stream", user=user)
    started = time.monotonic()
    run_execute(run.pk)
    seconds = time.monotonic() - started
    token_events = Event.objects.filter(topic=run.topic, type="token").count()
    print(
        f"{label:8} {tokens:,} streamed tokens in {seconds:.1f} s: {token_events} token events "
        f"(one per {seconds * 1000 / max(token_events, 1):.0f} ms), "
        f"{Event.objects.count() - events_before} events and {ChatMessage.objects.count() - messages_before} "
        f"messages in all; one row per token would be {tokens:,} (run {ChatRun.objects.get(pk=run.pk).stop_reason})"
    )


if __name__ == "__main__":
    pg = os.environ.get("BENCH_PG_URL")
    measure(pg, "postgres") if pg else measure("", "sqlite")
