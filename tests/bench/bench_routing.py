"""Routing figures: what routing adds to a model call, and how fast the client parses a stream.

1. Overhead of select + reserve + record per call (p50/p95), with a global and a mode budget in force,
   next to the bare HTTP round trip (a non-streamed completion) to the fake OpenRouter in the same run.
2. SSE parsing throughput (chunks/s) of ``routing.clients`` next to the ``openai`` SDK's streaming
   parser, both reading the same stream from the same fake (in its own process) in the same run.

    DEBUG=1 .venv/bin/python tests/bench/bench_routing.py                        # a fresh SQLite file
    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/jhq_routing .venv/bin/python tests/bench/bench_routing.py

A PostgreSQL database named in ``DATABASE_URL`` is created fresh for the run and dropped after it.

Needs the bench extra (``pip install -e '.[bench]'``). Nothing here asserts anything about time.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.common import drop_database, pct, recreate_database  # noqa: E402

CALLS = 300
ROUND_TRIPS = 300
STREAM_CHUNKS = 20_000
STREAM_RUNS = 5


def serve() -> None:
    """``--serve``: the fake in its own process, so it does not share the GIL with what is measured."""
    sys.path.insert(0, str(ROOT))
    from tests.fakes.openrouter import FakeOpenRouter, Reply, Tool

    with FakeOpenRouter() as fake:
        # Streams: STREAM_CHUNKS content fragments, a tool call in fragments, the usage chunk, [DONE];
        # written in 64 KiB pieces so the server's writes are not what is measured. Non-streamed: one line.
        long = Reply(
            text="Grüße, world! " * (STREAM_CHUNKS * 3 // 14),
            fragment=3,
            tools=[Tool("lookup", '{"query": "routing benchmark", "limit": 10}')],
            finish_reason="tool_calls",
            byte_split=65536,
        )
        short = Reply(text="Deploy 42 failed on a missing variable.", cost=Decimal("0.00123"))
        fake.default = lambda body: long if body.get("stream") else short
        print(fake.url, flush=True)
        sys.stdin.read()  # until the parent closes it


def setup_django() -> None:
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("HQ_VAR_DIR", tempfile.mkdtemp(prefix="hq-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='hq-bench-')}/bench.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "juggernaut.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def bench_overhead(url: str) -> None:
    import requests

    from routing import services
    from routing.clients import Completion, Usage
    from routing.models import Budget, CostTracking, Reservation
    from routing.models import Usage as UsageRow

    UsageRow.objects.all().delete()
    Reservation.objects.all().delete()
    CostTracking.objects.all().delete()
    Budget.objects.all().delete()
    services.budget_set(
        scope="global", period="day", limit_usd=Decimal("1000000"), soft_limit_usd=Decimal("900000")
    )
    services.budget_set(scope="mode", mode="code", period="month", limit_usd=Decimal("1000000"))
    messages = [{"role": "user", "content": "Which deploy failed, and why? " * 20}]
    estimate, upper = services.prompt_token_bounds(messages)
    answer = Completion(
        id="gen-1",
        model="openai/gpt-4o",
        content="ok",
        finish_reason="stop",
        usage=Usage(prompt_tokens=estimate, completion_tokens=20, cost=Decimal("0.00123")),
    )
    overhead = []
    for i in range(CALLS):
        started = time.perf_counter()
        selection = services.route_select(
            "code", prompt_tokens=estimate, prompt_tokens_max=upper, max_tokens=512
        )
        reservation = services.budget_reserve(selection, session=f"s{i % 10}")
        services.usage_record(reservation, selection, answer, latency=0.5)
        overhead.append((time.perf_counter() - started) * 1000)

    session = requests.Session()
    session.headers["Authorization"] = "Bearer sk-or-test"
    body = {"model": "openai/gpt-4o", "messages": messages, "max_tokens": 16}
    round_trips = []
    for _ in range(ROUND_TRIPS):
        started = time.perf_counter()
        response = session.post(f"{url}/chat/completions", json={**body, "stream": False}, timeout=10)
        response.json()
        round_trips.append((time.perf_counter() - started) * 1000)
    print(f"\nper call, ms ({CALLS} calls; database: {os.environ['DATABASE_URL'].split(':')[0]})")
    print(f"  {'':44} {'p50':>8} {'p95':>8}")
    print(f"  {'routing: select + reserve + record':44} {pct(overhead, 0.5):8.2f} {pct(overhead, 0.95):8.2f}")
    print(
        f"  {'peer: bare HTTP round trip to the fake':44} {pct(round_trips, 0.5):8.2f} {pct(round_trips, 0.95):8.2f}"
    )


def bench_stream(url: str) -> None:
    import logging

    import openai

    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)

    from routing.clients import OpenRouterClient

    ours = OpenRouterClient(base_url=url, api_key="sk-or-test")
    sdk = openai.OpenAI(base_url=url, api_key="sk-or-test", max_retries=0)
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "go"}]}

    def run_ours() -> tuple[int, float, int]:
        started = time.perf_counter()
        stream = ours.chat_stream(body)
        completion = stream.collect()
        return stream.chunks, time.perf_counter() - started, len(completion.content)

    def run_sdk() -> tuple[int, float, int]:
        started = time.perf_counter()
        chunks = 0
        text = []
        for chunk in sdk.chat.completions.create(stream=True, stream_options={"include_usage": True}, **body):
            chunks += 1
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
        return chunks, time.perf_counter() - started, len("".join(text))

    results: dict[str, list[tuple[int, float, int]]] = {"routing.clients (ours)": [], "openai SDK": []}
    run_ours(), run_sdk()  # warm up both
    for _ in range(STREAM_RUNS):  # interleaved, so both see the same machine
        results["routing.clients (ours)"].append(run_ours())
        results["openai SDK"].append(run_sdk())
    chunks = results["openai SDK"][0][0]
    print(
        f"\nSSE parsing: the same stream of {chunks:,} chunks from the fake, {STREAM_RUNS} runs each (median)"
    )
    print(f"  {'':28} {'chunks/s':>12} {'ms/stream':>10} {'text chars':>11}")
    for name, runs in results.items():
        seconds = statistics.median(r[1] for r in runs)
        print(f"  {name:28} {runs[0][0] / seconds:12,.0f} {seconds * 1000:10.1f} {runs[0][2]:11,}")
    print(
        "  (ours also assembles tool-call fragments, usage and finish reasons; the SDK loop only reads deltas)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true")
    if parser.parse_args().serve:
        serve()
        return
    fake = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        url = fake.stdout.readline().strip()
        os.environ["OPENROUTER_BASE_URL"] = url
        os.environ["OPENROUTER_API_KEY"] = "sk-or-test"
        pg_url = os.environ.get("DATABASE_URL", "")
        if pg_url.startswith("postgres"):
            recreate_database(pg_url)
        setup_django()
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cores; fake OpenRouter at {url} (own process)"
        )
        bench_overhead(url)
        bench_stream(url)
    finally:
        fake.stdin.close()
        fake.wait(10)
        if os.environ.get("DATABASE_URL", "").startswith("postgres"):
            from django.db import connections

            connections.close_all()
            drop_database(os.environ["DATABASE_URL"])


if __name__ == "__main__":
    main()
