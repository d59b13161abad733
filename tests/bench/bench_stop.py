"""Stop → ``stop_reason`` latency in each phase of a chat run, next to a Stop that can only cancel a stream.

    DEBUG=1 .venv/bin/python tests/bench/bench_stop.py        # BENCH_STOPS=10 runs per phase

It makes a temporary SQLite database, answers model calls from the fake OpenRouter and runs each chat
run on a thread as a runner process would. In each phase (the provider holding its headers back, a
429's backoff, a silence between chunks, a tool that runs for long) it presses Stop once the run is
there and times until the run's ``stop_reason`` event is in the log. The peer is the same Stop with the
model call unable to be abandoned before its stream exists (``cancel`` ignored), as the HQ was before.
It prints figures and asserts nothing about time.
"""

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.common import pct  # noqa: E402

STOPS = int(os.environ.get("BENCH_STOPS", "10"))
HOLD = 6.0  # seconds the provider or the tool keeps the run waiting


def main() -> None:
    var_dir = tempfile.mkdtemp(prefix="bench-stop-")
    from tests.fakes.openrouter import Fail, FakeOpenRouter, Reply, Tool

    with FakeOpenRouter() as fake:
        os.environ.update(
            DEBUG="1",
            DJANGO_SETTINGS_MODULE="juggernaut.settings",
            DATABASE_URL=f"sqlite:///{var_dir}/bench.sqlite3",
            HQ_VAR_DIR=var_dir,
            LOG_LEVEL="ERROR",
            OPENROUTER_BASE_URL=fake.url,
            OPENROUTER_API_KEY=fake.api_key,
            OPENROUTER_IDLE_TIMEOUT_SECONDS=str(HOLD * 2),
        )
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection

        from chat import services
        from chat.loop import run_execute
        from chat.models import ChatRun
        from chat.tools_registry import registry, tool_build
        from juggernaut.models import Event
        from juggernaut.tools import ToolSpec
        from routing.clients import OpenRouterClient

        call_command("migrate", verbosity=0)
        user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})

        def bench_slow_tool() -> dict:
            """A tool that works for a while (the benchmark's)."""
            time.sleep(HOLD)
            return {"done": True}

        registry()["bench_slow_tool"] = tool_build(bench_slow_tool, ToolSpec(safe=True), "bench")
        phases = {
            "before the headers": (lambda: [Reply(text="late", headers_delay=HOLD)], "calling_model"),
            "in a 429's backoff": (
                lambda: [Fail(429, "Rate limited", retry_after=str(int(HOLD))), Reply(text="late")],
                "calling_model",
            ),
            "between chunks": (
                lambda: [Reply(text="word " * 40, fragment=5, chunk_delay=HOLD / 4)],
                "streaming",
            ),
            "in a tool": (
                lambda: [Reply(tools=[Tool("bench_slow_tool", "{}")], finish_reason="tool_calls")],
                "tool_running",
            ),
        }

        def stop_once(turns: list, phase: str) -> float:
            fake.turns.clear()
            fake.script(*turns)
            session = services.session_create(user, mode="normal", title="Bench")
            run = services.message_send(session, content="What is failing?", user=user)
            thread = threading.Thread(target=lambda: (run_execute(run.pk), connection.close()))
            thread.start()
            deadline = time.monotonic() + 30
            while ChatRun.objects.get(pk=run.pk).phase != phase:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"run {run.pk} never reached {phase}")
                time.sleep(0.01)
            time.sleep(0.2)  # well inside the phase
            pressed = time.monotonic()
            services.run_stop(run, user=user)
            while not Event.objects.filter(topic=run.topic, type="stop_reason").exists():
                time.sleep(0.005)
            took = time.monotonic() - pressed
            thread.join(HOLD * 3)
            return took

        original = OpenRouterClient.chat_stream
        rows = []
        for label, (turns, phase) in phases.items():
            figures = {}
            for peer in (False, True):
                if peer:
                    OpenRouterClient.chat_stream = lambda self, body, cancel=None: original(self, body)
                times = [stop_once(turns(), phase) for _ in range(STOPS if not peer else max(3, STOPS // 3))]
                OpenRouterClient.chat_stream = original
                figures[peer] = times
            rows.append((label, figures[False], figures[True]))

    print(f"Stop → stop_reason, seconds (provider or tool holds the run {HOLD:.0f} s; SQLite)")
    print(f"{'phase':<22} {'runs':>4} {'p50':>7} {'p95':>7}   {'stream-only cancel: p50':>24} {'p95':>7}")
    for label, now, before in rows:
        print(
            f"{label:<22} {len(now):>4} {pct(now, 0.5):>7.3f} {pct(now, 0.95):>7.3f}   "
            f"{pct(before, 0.5):>24.3f} {pct(before, 0.95):>7.3f}"
        )


if __name__ == "__main__":
    main()
