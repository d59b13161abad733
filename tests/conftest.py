"""Shared fixtures: the named users, API tokens, a live daphne server and a Chromium browser.

alice is the operator (staff), bob is a signed-up user who is not staff, charlie is anonymous.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from juggernaut.engine.services import read_models
from juggernaut.events.relay import relays_stop
from juggernaut.models import ApiToken

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"  # screenshots of browser tests (git-ignored): look at them
STATE_WALK = ARTIFACTS / "state-walk.md"  # the browser state walk's table, printed after the run
SESSION_STARTED = time.time()
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
PASSWORD = "correct horse battery staple"
CLOSED_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once


def pytest_itemcollected(item) -> None:
    """A browser test starts processes, and a test that starts processes is slow: ``-m "not slow"``
    (the quick loop) leaves them all out, ``-m "not process"`` (CI's SQLite run) the processes only."""
    if item.get_closest_marker("browser"):
        item.add_marker(pytest.mark.process)
    if item.get_closest_marker("process"):
        item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter) -> None:
    """The state walk's table (state, sentence shown, seconds to show) in the run's output, when
    this run wrote it."""
    if STATE_WALK.exists() and STATE_WALK.stat().st_mtime >= SESSION_STARTED:
        terminalreporter.write_sep("-", f"state walk ({STATE_WALK.relative_to(ROOT)})")
        terminalreporter.write(STATE_WALK.read_text())


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop on the main thread for the
    rest of the session, which async tests cannot share."""
    items.sort(key=lambda item: "browser_instance" in getattr(item, "fixturenames", ()))


@pytest.fixture(autouse=True)
def no_package_registries(settings) -> None:
    """The suite never asks the public package registries or GitHub: tests that audit dependencies point
    ``CODEHEALTH_PYPI_URL``/``CODEHEALTH_NPM_URL`` at the fake in ``tests/fakes/registries.py``."""
    settings.CODEHEALTH_REGISTRY_LOOKUPS = False
    settings.CODEHEALTH_OSV_SNAPSHOT = ""
    settings.CODEHEALTH_OSV_URL = CLOSED_URL
    settings.GITHUB_API_URL = CLOSED_URL  # nor GitHub: the code-health tests serve tests/fakes/github.py
    # What is unreachable fails at once instead of after backoff; the retry tests build their own clients.
    settings.HTTP_MAX_RETRIES = 0


@pytest.fixture(autouse=True)
def hq_just_started(monkeypatch) -> None:
    """Each test is an HQ that has just started: the autonomy loop's start-up grace (a loop that never
    ran is not yet news) counts from the test's start, not from the session's."""
    monkeypatch.setattr(read_models, "STARTED_AT", timezone.now())


def is_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


needs_postgres = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="needs PostgreSQL: set DATABASE_URL=postgres://… (CI runs this suite on Postgres too)",
)


@pytest.fixture
async def stop_relays():
    yield
    await relays_stop()
    # The relay and consumers used asgiref's worker thread; its connection would outlive the test
    # database otherwise.
    await sync_to_async(connections.close_all)()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", PASSWORD, is_staff=True)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD, is_staff=False)


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def make_token(alice):
    """``make_token("read", "write")`` → the raw bearer value of a new token of alice's."""

    def make(*scopes: str, user=None, days: int | None = 30) -> str:
        token, raw = ApiToken.generate(name="test", user=user or alice, scopes=list(scopes), days=days)
        token.save()
        return raw

    return make


@pytest.fixture
def bearer(make_token):
    def headers(*scopes: str) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {make_token(*scopes)}"}

    return headers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url_for_subprocess() -> str:
    """The test database, as a URL another process can open."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for_health(url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was healthy")
        try:
            if requests.get(url + "/api/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy in {timeout}s")


class DaphneServer:
    """A real daphne process (HTTP + websockets) serving the test database."""

    def __init__(self, port: int | None = None, env: dict | None = None) -> None:
        self.extra_env = env or {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.var_dir = tempfile.mkdtemp(prefix="hq-live-")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "DaphneServer":
        env = (
            dict(
                os.environ,
                DEBUG="1",
                HQ_VAR_DIR=self.var_dir,
                DATABASE_URL=database_url_for_subprocess(),
                EVENTS_POLL_SECONDS="0.1",
                CODEHEALTH_REGISTRY_LOOKUPS="0",
                CODEHEALTH_OSV_SNAPSHOT="",
                CODEHEALTH_OSV_URL=CLOSED_URL,
                GITHUB_API_URL=CLOSED_URL,
            )
            | self.extra_env
        )
        with open(Path(self.var_dir) / "daphne.log", "a") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "juggernaut.serve",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "juggernaut.asgi:application",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_health(self.url, self.proc)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.var_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def hq_server(django_db_setup, django_db_blocker):
    """The live server for browser tests (session-wide).

    Tests that use it must commit their data (``transactional_db``) so the server can see it.
    """
    server = DaphneServer().start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture(scope="session")
def browser_instance():
    if not Path(CHROMIUM).exists():
        reason = f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests make are
    # still plain synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser_instance):
    context = browser_instance.new_context(viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    pg.set_default_timeout(15000)
    yield pg
    context.close()


@pytest.fixture
def signed_in_page(page, hq_server, alice, transactional_db):
    """A browser page signed in as alice through the login form."""
    return sign_in(page, hq_server)


def sign_in(page, base_url: str, username: str = "alice"):
    page.goto(base_url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    return page


def in_thread(func):
    """Run ORM writes on another thread, as another process would: committed, then relayed."""
    result: list = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(func())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(15)
    assert not errors, errors
    return result[0] if result else None


class BrowserProblems:
    """Collects a browser page's console errors, uncaught exceptions and failed requests."""

    def __init__(self, page) -> None:
        self.items: list[str] = []
        page.on(
            "console", lambda m: m.type == "error" and self.items.append(f"console on {page.url}: {m.text}")
        )
        page.on("pageerror", lambda e: self.items.append(f"exception on {page.url}: {e}"))
        # ERR_ABORTED is the browser cancelling a request itself (a navigation or a reload leaving the
        # favicon behind), not a server failing it: those show as other net:: errors or HTTP statuses.
        page.on(
            "requestfailed",
            lambda r: r.failure != "net::ERR_ABORTED" and self.items.append(f"failed: {r.url} {r.failure}"),
        )
        page.on("response", lambda r: r.status >= 400 and self.items.append(f"HTTP {r.status}: {r.url}"))


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
