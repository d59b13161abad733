"""A jobs process killed with ``kill -9`` mid-crawl, mid-scan and mid-chat-run: the next jobs process
takes each over within a minute. The crawl is closed failed and resumed from its cursor, with no line
lost or stored twice; the scan is closed failed, in words, and scanned again; the chat run is
interrupted, and Resume completes it.

Real processes on PostgreSQL (web and ``manage.py qcluster``), the fake Railway slowed down, a local
repository large enough to keep its analysis busy, and the fake OpenRouter stalling. The leases are
short here (a few seconds): the behaviour is under test, not the production numbers. The takeover
times are printed for the record.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests

from tests.conftest import CLOSED_URL, ROOT, free_port, needs_postgres, wait_for_health
from tests.fakes.openrouter import FakeOpenRouter, Reply, Stall
from tests.fakes.railway import TOKEN, FakeRailway
from tests.juggernaut.test_database_restart import chat_send, wait

pytestmark = [pytest.mark.process, pytest.mark.slow, needs_postgres]

LEASE_SECONDS = 3  # every lease of the test: crawl, scan and chat run
LINES = 40  # Railway lines to crawl, four a page, each answer slowed down
TAKEN_OVER_WITHIN = 60.0

SETUP = """
import json, sys
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("sync_schedules", verbosity=0)
from django.contrib.auth import get_user_model
from django_q.models import Schedule
from codehealth import services
from juggernaut.models import ApiToken
# The first jobs process runs only what the test starts: no schedule is due until the second one.
Schedule.objects.update(next_run="2999-01-01T00:00:00Z")
admin = get_user_model().objects.create_user("root", "root@example.com", "x", is_staff=True, is_superuser=True)
token, raw = ApiToken.generate(name="takeover", user=admin, scopes=["read", "write"], days=1)
token.save()
repository = services.repository_create(admin, local_path=sys.argv[1], name="big", scan_every_days=0)
print(json.dumps({"token": raw, "repository": repository.pk}))
"""

CRAWL = "import django; django.setup(); from django_q.tasks import async_task; async_task('logscrawler.tasks.logs_crawl')"


def big_repository(root: Path) -> Path:
    """A git checkout of many modules: its analysis takes seconds, long enough to be killed mid-way."""
    path = root / "big"
    (path / "pkg").mkdir(parents=True)
    for n in range(600):
        (path / "pkg" / f"m{n}.py").write_text("".join(f"V{k} = {k} + 1\n" for k in range(400)))
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "big"],
    ):
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)
    return path


class Database:
    """A fresh database of its own on the test server, dropped afterwards."""

    def __init__(self) -> None:
        base = urlsplit(os.environ["DATABASE_URL"])
        self.name = f"{base.path.lstrip('/') or 'jhq'}_jobs_takeover"
        self.admin = urlunsplit(base._replace(path="/postgres"))
        self.url = urlunsplit(base._replace(path=f"/{self.name}"))

    def create(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def query(self, sql: str, *args) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, args).fetchall()

    def row(self, sql: str, *args) -> tuple:
        return self.query(sql, *args)[0]

    def drop(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def session_members(session: int) -> list[int]:
    """The processes of a session (``/proc/<pid>/stat``'s sixth field), its leader first."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session:
                members.append(int(stat.parent.name))
    return sorted(members, key=lambda pid: pid != session)


class Processes:
    """The web process and jobs processes, each in a process group of its own (a kill takes all of it)."""

    def __init__(self, env: dict, var: Path) -> None:
        self.env, self.var = env, var
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.var / f"{name}.log", "w") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.procs[name]

    def kill(self, name: str) -> None:
        """``kill -9`` of the process and everything of its session, as when its host dies: django-q2's
        workers, and a scan's sandboxed child (in a process group of its own)."""
        proc = self.procs.pop(name)
        for pid in session_members(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()

    def log(self, name: str) -> str:
        return (self.var / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in list(self.procs.items()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            self.kill(name)  # what is left of its session


def test_it_takes_over_a_crawl_a_scan_and_a_chat_run_of_a_killed_jobs_process():
    var = Path(tempfile.mkdtemp(prefix="hq-takeover-"))
    database = Database()
    railway = FakeRailway(delay=0.6)
    start = datetime.now(UTC) - timedelta(minutes=30)
    for n in range(LINES):
        railway.add_log("env-prod", start + timedelta(seconds=n), f"charge {n} failed", severity="error")
    openrouter = FakeOpenRouter().__enter__()
    # the first run stalls (keep-alives, no token) until its process is killed; Resume's run answers
    openrouter.script(Stall(600, keepalive_every=1), Reply(text="Resumed, and done."))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="juggernaut.settings",
        HQ_VAR_DIR=str(var / "hq"),
        DATABASE_URL=database.url,
        Q_WORKERS="4",
        Q_TIMEOUT="900",  # no job of the dead process is delivered again while the test runs
        CHAT_RUN_LEASE_SECONDS=str(LEASE_SECONDS),
        CHAT_HEARTBEAT_SECONDS="0.5",
        OPENROUTER_BASE_URL=openrouter.url,
        OPENROUTER_API_KEY=openrouter.api_key,
        OPENROUTER_IDLE_TIMEOUT_SECONDS="600",
        LOGS_CRAWL_LEASE_SECONDS=str(LEASE_SECONDS),
        LOGS_CRAWL_MINUTES="1",
        LOGS_CRAWL_PAGE="4",
        LOGS_RAILWAY_HOURLY_REQUESTS="100000",
        RAILWAY_TOKEN=TOKEN,
        CODEHEALTH_SCAN_LEASE_SECONDS=str(LEASE_SECONDS),
        CODEHEALTH_SCAN_TIMEOUT_SECONDS="300",
        CODEHEALTH_LOCAL_ROOTS=str(var / "repos"),
        CODEHEALTH_REGISTRY_LOOKUPS="0",
        CODEHEALTH_OSV_SNAPSHOT="",
        CODEHEALTH_OSV_URL=CLOSED_URL,
        GITHUB_API_URL=CLOSED_URL,
    )
    processes = Processes(env, var)
    try:
        with railway.serve() as server:
            env["RAILWAY_API_URL"] = server.url
            database.create()
            repo = big_repository(var / "repos")
            made = subprocess.run(
                [sys.executable, "-c", SETUP, str(repo)],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            setup = json.loads(made.stdout.strip().splitlines()[-1])
            headers = {"Authorization": f"Bearer {setup['token']}"}
            web = processes.start(
                "web",
                "-m",
                "juggernaut.serve",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "juggernaut.asgi:application",
            )
            wait_for_health(url, web)
            processes.start("jobs", "manage.py", "qcluster")

            # Three jobs at work in the first jobs process.
            subprocess.run([sys.executable, "-c", CRAWL], cwd=ROOT, env=env, check=True, capture_output=True)
            scan = requests.post(
                f"{url}/api/codehealth/repositories/{setup['repository']}/scans", headers=headers, timeout=30
            )
            assert scan.status_code == 202, scan.text
            run_id = chat_send(SimpleNamespace(url=url), headers)
            assert run_id is not None

            def mid_way() -> bool:
                crawl = database.row(
                    "SELECT count(*) FROM railway_logs WHERE EXISTS "
                    "(SELECT 1 FROM log_crawl_runs WHERE status = 'running')"
                )[0]
                beating = database.row(
                    "SELECT count(*) FROM code_health_scans WHERE status = 'running' "
                    "AND heartbeat_at > started_at + interval '1 second'"
                )[0]
                chat = database.row("SELECT status FROM chat_runs WHERE id = %s", run_id)[0]
                return (
                    0 < crawl < LINES
                    and beating == 1
                    and chat == "running"
                    and bool(openrouter.chat_bodies())
                )

            wait(mid_way, "the crawl, the scan and the chat run under way", timeout=60)
            (dead_crawl,) = database.row("SELECT id FROM log_crawl_runs WHERE status = 'running'")
            (dead_scan,) = database.row("SELECT id FROM code_health_scans WHERE status = 'running'")
            lines_before = database.row("SELECT count(*) FROM railway_logs")[0]

            processes.kill("jobs")
            killed = time.monotonic()
            # The per-minute schedules come due; a new jobs process starts.
            database.query("UPDATE django_q_schedule SET next_run = now() RETURNING id")
            processes.start("jobs-2", "manage.py", "qcluster")

            taken_over: dict[str, float] = {}

            def closed() -> bool:
                crawl = database.row("SELECT status, errors FROM log_crawl_runs WHERE id = %s", dead_crawl)
                scan = database.row("SELECT status, error FROM code_health_scans WHERE id = %s", dead_scan)
                run = requests.get(f"{url}/api/chat/runs/{run_id}", headers=headers, timeout=30).json()
                now = time.monotonic() - killed
                if crawl[0] != "running":
                    taken_over.setdefault("crawl", now)
                if scan[0] != "running":
                    taken_over.setdefault("scan", now)
                if run["status"] != "running":
                    taken_over.setdefault("chat run", now)
                return len(taken_over) == 3

            wait(closed, "the three taken over", timeout=120)
            print(
                "\ntakeover after kill -9 of the jobs process (leases of "
                f"{LEASE_SECONDS} s): "
                + ", ".join(f"{kind} {seconds:.1f} s" for kind, seconds in sorted(taken_over.items()))
            )

            # The crawl: closed failed in words, then resumed from its cursor; every line once.
            status, errors = database.row(
                "SELECT status, errors FROM log_crawl_runs WHERE id = %s", dead_crawl
            )
            assert status == "failed" and "taken over" in errors[0]

            def crawled() -> bool:
                return database.row("SELECT count(*) FROM log_crawl_runs WHERE status = 'ok'")[0] >= 1

            wait(crawled, "a crawl that finished", timeout=90)
            lines, distinct = database.row("SELECT count(*), count(DISTINCT message) FROM railway_logs")
            assert lines == distinct == LINES
            assert 0 < lines_before < LINES

            # The scan: closed failed in words, then scanned again to the end.
            status, error = database.row(
                "SELECT status, error FROM code_health_scans WHERE id = %s", dead_scan
            )
            assert status == "failed" and error.startswith("the scan stopped sending heartbeats")

            def scanned() -> bool:
                return (
                    database.row(
                        "SELECT count(*) FROM code_health_scans WHERE id > %s AND status = 'done'", dead_scan
                    )[0]
                    == 1
                )

            wait(scanned, "the repository scanned again", timeout=240)

            # The chat run: interrupted, and Resume completes it.
            run = requests.get(f"{url}/api/chat/runs/{run_id}", headers=headers, timeout=30).json()
            assert (run["status"], run["stop_reason"]) == ("stopped", "interrupted")
            resumed = requests.post(f"{url}/api/chat/runs/{run_id}/resume", headers=headers, timeout=30)
            assert resumed.status_code == 202, resumed.text

            def completed():
                answer = requests.get(
                    f"{url}/api/chat/runs/{resumed.json()['run_id']}", headers=headers, timeout=30
                ).json()
                return answer if answer["status"] == "stopped" else None

            assert wait(completed, "the resumed run completed", timeout=60)["stop_reason"] == "completed"

            assert all(seconds < TAKEN_OVER_WITHIN for seconds in taken_over.values()), taken_over
    except BaseException:
        for name in ("web", "jobs", "jobs-2"):
            if (var / f"{name}.log").exists():
                print(f"--- {name} ---\n{processes.log(name)[-4000:]}")
        raise
    finally:
        processes.close()
        openrouter.__exit__(None, None, None)
        database.drop()
        shutil.rmtree(var, ignore_errors=True)
