"""Chat page figures in a real browser, against a live daphne and the fake OpenRouter:

1. ``tool_start`` written → the tool shown on the page's timeline, p50/p95, with 1 and with 50 pages
   watching the same session (all Chromium tabs of one browser), next to the JSON SSE stream's consumer
   (``/api/events/<topic>/stream``, a plain client in this process) on the same events in the same run.
2. Stop pressed in the page mid-stream → the run stopped (its ``ended_at``) and → the stop shown.

    DEBUG=1 .venv/bin/python tests/bench/bench_chat_browser.py      # SQLite in a temp directory
    DEBUG=1 BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/jhq_bench_chatb .venv/bin/python tests/bench/bench_chat_browser.py

Needs Debian's Chromium (``CHROMIUM_PATH``). Browser and server share one clock (this machine's), so the
browser's ``Date.now()`` is compared with the rows' timestamps. Nothing here asserts anything about time.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.common import drop_database, pct, recreate_database  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "4"))
TOOLS_PER_RUN = int(os.environ.get("BENCH_TOOLS_PER_RUN", "5"))
STOPS = int(os.environ.get("BENCH_STOPS", "8"))
PASSWORD = "bench-password-not-secret"
# Records when each timeline entry first appears, and when the page first says the run stopped.
OBSERVER = """
window.__seen = {};
new MutationObserver(() => {
  for (const el of document.querySelectorAll('details.chat-tool[id]')) {
    if (!(el.id in window.__seen)) window.__seen[el.id] = Date.now();
  }
}).observe(document, {subtree: true, childList: true});
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def epoch_ms(dt) -> float:
    return dt.timestamp() * 1000


class SSEWatcher(threading.Thread):
    """The JSON consumer: reads a run's SSE stream and notes when each ``tool_start`` arrives."""

    def __init__(self, url: str, topic: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.topic, self.token = url, topic, token
        self.arrived: dict[str, float] = {}  # tool_call_id → epoch ms
        self.ready = threading.Event()

    def run(self) -> None:
        import requests

        with requests.get(
            f"{self.url}/api/events/{self.topic}/stream",
            stream=True,
            timeout=60,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            self.ready.set()
            for line in response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    envelope = json.loads(line[5:])
                    if envelope["type"] == "tool_start":
                        self.arrived.setdefault(envelope["data"]["tool_call_id"], time.time() * 1000)
                    if envelope["type"] == "stop_reason":
                        return


def measure(database_url: str, label: str) -> None:
    var_dir = tempfile.mkdtemp(prefix="bench-chatb-")
    if database_url.startswith("postgres"):
        recreate_database(database_url)
    else:
        database_url = f"sqlite:///{var_dir}/bench.sqlite3"
    from tests.fakes.openrouter import FakeOpenRouter

    with FakeOpenRouter() as fake:
        env = dict(
            os.environ,
            DEBUG="1",
            DATABASE_URL=database_url,
            HQ_VAR_DIR=var_dir,
            LOG_LEVEL="WARNING",
            OPENROUTER_BASE_URL=fake.url,
            OPENROUTER_API_KEY=fake.api_key,
            CHAT_RUNNER="manual",
        )
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        # Playwright's sync API keeps an event loop on this thread; the ORM calls here are plain blocking
        # ones between browser steps (what Django's docs allow for such a caller), not async code.
        os.environ.update(env, DJANGO_SETTINGS_MODULE="juggernaut.settings", DJANGO_ALLOW_ASYNC_UNSAFE="true")
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connections

        from chat.tools_registry import registry, tool_build
        from juggernaut.models import ApiToken
        from juggernaut.tools import ToolSpec

        def probe(step: int) -> dict:
            """A quick read-only tool whose result differs per step."""
            return {"step": step, "ok": True}

        registry()["probe"] = tool_build(probe, ToolSpec(safe=True), "bench")
        user = get_user_model().objects.create_user("bench", password=PASSWORD, is_staff=True)
        token, raw = ApiToken.generate(name="bench", user=user, scopes=["read"], days=1)
        token.save()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(Path(var_dir) / "daphne.log", "a")  # noqa: SIM115 - closed after the server
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "juggernaut.serve",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "juggernaut.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            wait_healthy(url)
            browse(url, raw, fake, user, label)
        finally:
            server.terminate()
            server.wait(20)
            log.close()
            connections.close_all()
    if database_url.startswith("postgres"):
        drop_database(database_url)
    shutil.rmtree(var_dir, ignore_errors=True)


def wait_healthy(url: str) -> None:
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/api/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("daphne did not come up")


def browse(url: str, raw_token: str, fake, user, label: str) -> None:
    from playwright.sync_api import sync_playwright

    from chat import services
    from chat.loop import run_execute
    from chat.models import ToolExecution
    from tests.fakes.openrouter import Reply, Tool

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context()
        context.add_init_script(OBSERVER)
        first = context.new_page()
        first.goto(url + "/login/")
        first.fill("input[name=username]", "bench")
        first.fill("input[name=password]", PASSWORD)
        first.click("button[type=submit]")
        first.wait_for_url(url + "/")
        for watchers in (1, 50):
            session = services.session_create(user, mode="normal", title=f"bench {watchers} watching")
            pages = [first] + [context.new_page() for _ in range(watchers - 1)]
            for page in pages:
                page.goto(f"{url}/chat/sessions/{session.pk}/")
            for page in pages:
                page.wait_for_selector("#live-indicator.live-open", timeout=60000)
            shown, streamed = [], []
            for r in range(RUNS):
                fake.script(
                    *[
                        Reply(
                            tools=[Tool("probe", json.dumps({"step": i}), id=f"c{watchers}_{r}_{i}")],
                            finish_reason="tool_calls",
                        )
                        for i in range(TOOLS_PER_RUN)
                    ],
                    Reply(text="All probes answered."),
                )
                run = services.message_send(session, content=f"probe {r}", user=user)
                sse = SSEWatcher(url, run.topic, raw_token)
                sse.start()
                sse.ready.wait(10)
                time.sleep(0.3)  # the pages learn of the new run from its run_started on the chat topic
                run_execute(run.pk)
                executions = list(ToolExecution.objects.filter(run=run))
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    seen = [page.evaluate("window.__seen") for page in pages]
                    if all(f"chat-tool-{e.pk}" in s for s in seen for e in executions):
                        break
                    time.sleep(0.1)
                sse.join(10)
                for e in executions:
                    written = epoch_ms(e.created_at)
                    shown += [s[f"chat-tool-{e.pk}"] - written for s in seen if f"chat-tool-{e.pk}" in s]
                    if e.tool_call_id in sse.arrived:
                        streamed.append(sse.arrived[e.tool_call_id] - written)
                missing = len(executions) * len(pages) - sum(
                    f"chat-tool-{e.pk}" in s for s in seen for e in executions
                )
                if missing:
                    print(f"  {watchers} pages, run {run.pk}: {missing} timeline entries never shown")
            print(
                f"{label:8} {watchers:2} page(s) watching: tool_start written → shown in the browser "
                f"p50 {pct(shown, 0.5):6.0f} ms  p95 {pct(shown, 0.95):6.0f} ms  ({len(shown)} samples);  "
                f"peer, SSE consumer: p50 {pct(streamed, 0.5):6.0f} ms  p95 {pct(streamed, 0.95):6.0f} ms"
            )
            for page in pages[1:]:
                page.close()
        stops(url, first, fake, user, label)
        browser.close()


def stops(url: str, page, fake, user, label: str) -> None:
    from chat import services
    from chat.loop import run_execute
    from chat.models import ChatRun
    from tests.fakes.openrouter import Reply

    session = services.session_create(user, mode="normal", title="bench stops")
    page.goto(f"{url}/chat/sessions/{session.pk}/")
    page.wait_for_selector("#live-indicator.live-open")
    to_stopped, to_shown = [], []
    for i in range(STOPS):
        fake.script(Reply(text="word " * 2000, chunk_delay=0.02, fragment=4))
        run = services.message_send(session, content=f"talk {i}", user=user)
        worker = threading.Thread(target=run_execute, args=(run.pk,))
        worker.start()
        page.wait_for_selector(f"#chat-stream-{run.pk}:has-text('word word')", timeout=30000)
        page.wait_for_selector("#chat-stop", timeout=10000)
        pressed = page.evaluate(
            "() => { const t = Date.now(); document.querySelector('#chat-stop').click(); return t; }"
        )
        page.wait_for_function(
            "pk => new RegExp(`run ${pk} stopped`).test(document.querySelector('#chat-status')?.textContent || '')",
            arg=run.pk,
            timeout=30000,
        )
        shown_at = page.evaluate("Date.now()")
        worker.join(30)
        run = ChatRun.objects.get(pk=run.pk)
        to_stopped.append(epoch_ms(run.ended_at) - pressed)
        to_shown.append(shown_at - pressed)
    print(
        f"{label:8} Stop pressed → run stopped: p50 {pct(to_stopped, 0.5):6.0f} ms  p95 {pct(to_stopped, 0.95):6.0f} ms;"
        f"  → shown stopped: p50 {pct(to_shown, 0.5):6.0f} ms  p95 {pct(to_shown, 0.95):6.0f} ms  ({STOPS} stops)"
    )


if __name__ == "__main__":
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    pg = os.environ.get("BENCH_PG_URL")
    measure(pg, "postgres") if pg else measure("", "sqlite")
