"""`make run` end to end: it sets itself up, serves, lets an operator sign in, and stops cleanly."""

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, wait_for_health

pytestmark = pytest.mark.process  # runs make run: migrate, daphne, the jobs cluster and a worker

ROOT = Path(__file__).resolve().parents[2]


def process_tree(root: int) -> set[int]:
    """Every live descendant of ``root`` (and root), read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        tree.update(children)
        frontier.extend(children)
    return tree


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_it_runs_signs_in_and_stops_without_leaving_processes(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env.update(
        PORT=str(port),
        HQ_VAR_DIR=str(tmp_path),
        DEBUG="1",
        HQ_ADMIN_USER="ops",
        HQ_ADMIN_PASSWORD="a-long-enough-password",
    )
    log = open(tmp_path / "make-run.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc, timeout=120)
        session = requests.Session()
        session.get(url + "/login/", timeout=5)
        response = session.post(
            url + "/login/",
            timeout=5,
            allow_redirects=True,
            data={
                "username": "ops",
                "password": "a-long-enough-password",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": url + "/login/"},
        )
        assert response.status_code == 200 and "Overview" in response.text
        deadline = time.monotonic() + 30
        tree: set[int] = set()
        while time.monotonic() < deadline:  # web, jobs (with its own workers) and the engine worker
            tree = process_tree(proc.pid)
            if len(tree) >= 5:
                break
            time.sleep(0.5)
        log.seek(0)
        output = log.read()
        assert re.search(r"started web \(pid \d+\)", output) and "started jobs" in output, output
    finally:
        tree = process_tree(proc.pid) | tree
        os.killpg(proc.pid, signal.SIGTERM)  # what Ctrl-C or a service manager does to the group
        proc.wait(timeout=60)
        log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(pid) for pid in tree):
        time.sleep(0.3)
    survivors = [pid for pid in tree if alive(pid)]
    assert survivors == [], f"processes left running: {survivors}"
    assert "stopped" in (tmp_path / "make-run.log").read_text()


def start_runhq(tmp_path, **extra: str):
    """``manage.py runhq`` on a free port with a fresh var/ and a short restart backoff; its output
    goes to a file the test reads back."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env.update(
        PORT=str(port),
        HQ_VAR_DIR=str(tmp_path),
        DEBUG="1",
        HQ_ADMIN_USER="ops",
        HQ_ADMIN_PASSWORD="a-long-enough-password",
        HQ_RESTART_BACKOFF_SECONDS="0.2",
        **extra,
    )
    log = open(tmp_path / "runhq.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "runhq"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log, f"http://127.0.0.1:{port}"


def test_it_restarts_a_dying_child_and_stops_only_on_a_crash_loop(tmp_path):
    proc, log, url = start_runhq(tmp_path)

    def output() -> str:
        log.seek(0)
        return log.read()

    def kill_worker(nth: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = re.findall(r"(?:started|restarted) worker \(pid (\d+)\)", output())
            if len(pids) >= nth and alive(int(pids[-1])):
                os.killpg(int(pids[-1]), signal.SIGKILL)
                return
            time.sleep(0.2)
        raise AssertionError(f"worker #{nth} never started:\n{output()}")

    try:
        wait_for_health(url, proc, timeout=120)
        kill_worker(1)
        deadline = time.monotonic() + 30
        while "restarted worker" not in output() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "worker exited with code -9; restarting it in 0.2 s" in output()
        assert requests.get(url + "/api/health", timeout=5).status_code == 200  # web never went down
        session = requests.Session()
        session.get(url + "/login/", timeout=5)
        overview = session.post(
            url + "/login/",
            timeout=5,
            data={
                "username": "ops",
                "password": "a-long-enough-password",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": url + "/login/"},
        ).text
        assert "worker exited with code -9; restarting it" in overview  # said on the Overview

        for nth in range(2, 6):  # four more deaths within a minute: a crash loop
            kill_worker(nth)
        assert proc.wait(timeout=60) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        text = output()
        log.close()
    assert "worker exited 5 times within 60 s (last exit code -9): a crash loop; stopping everything" in text
    assert "stopped" in text


def test_it_leaves_a_taken_over_worker_stopped_and_keeps_the_hq_up(tmp_path):
    proc, log, url = start_runhq(tmp_path)

    def output() -> str:
        log.seek(0)
        return log.read()

    try:
        wait_for_health(url, proc, timeout=120)
        session = requests.Session()
        session.get(url + "/login/", timeout=5)
        session.post(
            url + "/login/",
            timeout=5,
            data={
                "username": "ops",
                "password": "a-long-enough-password",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": url + "/login/"},
        )
        deadline = time.monotonic() + 60
        while "engine worker builtin: capabilities" not in output() and time.monotonic() < deadline:
            time.sleep(0.2)
        # One admin request takes the built-in worker's name.
        taken = session.post(
            url + "/api/engine/workers",
            json={"name": "builtin", "takeover": True},
            headers={"X-CSRFToken": session.cookies["csrftoken"]},
            timeout=10,
        )
        assert taken.status_code == 201, taken.text
        deadline = time.monotonic() + 60
        while "is not restarted" not in output() and time.monotonic() < deadline:
            assert proc.poll() is None, output()
            time.sleep(0.2)
        text = output()
        assert "worker stopped (exit code 78) and is not restarted" in text, text
        assert "python manage.py engine_worker --name builtin-2" in text
        assert "web and jobs keep running" in text

        # The HQ is still up and says so on the Overview, in words, with what to do next.
        assert requests.get(url + "/api/health", timeout=5).status_code == 200
        overview = session.get(url + "/", timeout=10).text
        assert "another owner took over its worker name builtin" in overview
        assert "python manage.py engine_worker --name builtin-2" in overview
        jobs = int(re.search(r"started jobs \(pid (\d+)\)", text).group(1))
        assert alive(jobs) and proc.poll() is None
        workers = session.get(url + "/api/engine/workers", timeout=5).json()
        assert [w["name"] for w in workers] == ["builtin"]  # the admin's, not fought over
        assert "restarted worker" not in output() and "crash loop" not in output()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)
        log.close()
    assert code == 0  # a clean stop, not a crash loop's exit


def overview_as_ops(url: str) -> str:
    session = requests.Session()
    session.get(url + "/login/", timeout=5)
    return session.post(
        url + "/login/",
        timeout=5,
        data={
            "username": "ops",
            "password": "a-long-enough-password",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": url + "/login/"},
    ).text


def test_it_restarts_a_hung_worker_whose_heartbeat_went_silent(tmp_path):
    proc, log, url = start_runhq(tmp_path, HQ_HUNG_SECONDS="6", ENGINE_HEARTBEAT_SECONDS="1")

    def output() -> str:
        log.seek(0)
        return log.read()

    def worker_pids() -> list[int]:
        return [int(p) for p in re.findall(r"(?:started|restarted) worker \(pid (\d+)\)", output())]

    try:
        wait_for_health(url, proc, timeout=120)
        deadline = time.monotonic() + 60
        while "engine worker builtin: capabilities" not in output() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # a heartbeat or two, so the one we stop is the one serving
        before = worker_pids()
        hung = before[-1]
        os.killpg(hung, signal.SIGSTOP)  # alive, but silent: what a deadlock looks like from outside
        deadline = time.monotonic() + 60
        while len(worker_pids()) <= len(before) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "worker hung: no heartbeat for" in output(), output()
        assert "(limit HQ_HUNG_SECONDS=6); killed it; restarting it in" in output()
        fresh = worker_pids()[-1]
        assert fresh != hung and alive(fresh) and not alive(hung)
        assert "worker hung: no heartbeat for" in overview_as_ops(url)  # said on the Overview's feed
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(hung, signal.SIGCONT)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        log.close()
