"""Engine fixtures: workers, handlers registered for one test, worker loops run in threads, and
``manage.py engine_worker`` processes on the test database."""

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator

import pytest
from django.db import connection

from juggernaut.db import pool_at_least
from juggernaut.engine import handlers, services
from juggernaut.engine.worker import WorkerLoop
from tests.conftest import ROOT, database_url_for_subprocess


@pytest.fixture
def make_worker():
    def make(name: str = "w1", capabilities: list[str] | None = None, concurrency: int = 1):
        return services.worker_register(name, capabilities=capabilities or [], concurrency=concurrency)

    return make


@pytest.fixture
def handler() -> Iterator[Callable]:
    """``handler("kind", func, capabilities=[...])``: registered for this test only."""
    added: list[str] = []

    def add(kind: str, func, **kwargs):
        handlers.register(kind, func, **kwargs)
        added.append(kind)
        return func

    yield add
    for kind in added:
        handlers.unregister(kind)


@pytest.fixture
def short_lease(settings):
    settings.ENGINE_LEASE_SECONDS = 1
    settings.ENGINE_HEARTBEAT_SECONDS = 1
    settings.ENGINE_BACKOFF_BASE_SECONDS = 0
    return settings


class LoopThreads:
    """Worker loops in threads, stopped and joined at the end of the test whatever happens."""

    def __init__(self) -> None:
        self.loops: list[WorkerLoop] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self, loop: WorkerLoop, *, exit_when_idle: bool = False) -> WorkerLoop:
        def target() -> None:
            try:
                loop.run(exit_when_idle=exit_when_idle)
            except BaseException as exc:  # surfaced by the test through .errors
                self.errors.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=target, name=f"loop-{loop.name}", daemon=True)
        self.loops.append(loop)
        self.threads.append(thread)
        thread.start()
        return loop

    def join(self, timeout: float = 120) -> None:
        for thread in self.threads:
            thread.join(timeout)
        alive = [t.name for t in self.threads if t.is_alive()]
        assert not alive, f"worker threads still running: {alive}"

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        for thread in self.threads:
            thread.join(30)


@pytest.fixture
def loops() -> Iterator[LoopThreads]:
    # Real workers are processes with a pool each; these loops share one process, so one pool for
    # all of them (16 loops × their threads), grown before any thread takes a connection.
    pool_at_least(64)
    threads = LoopThreads()
    yield threads
    threads.stop()


@pytest.fixture
def start_worker():
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        env = dict(
            os.environ,
            DEBUG="1",
            DATABASE_URL=database_url_for_subprocess(),
            HQ_VAR_DIR=tempfile.mkdtemp(prefix="hq-worker-"),
            ENGINE_HEARTBEAT_SECONDS="1",
        )
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "engine_worker", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
