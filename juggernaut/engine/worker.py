"""The built-in worker loop: register, claim, run handlers, heartbeat, report; stop cleanly.

``manage.py engine_worker`` runs one :class:`WorkerLoop` in its main thread; tests run several in
threads. Handlers run on ``concurrency`` long-lived daemon runner threads (each borrows a database
connection from the process's pool per task, checked before it is lent), so a handler that ignores
the stop request cannot keep the process alive past the grace period: its task is released and its
late report is refused by the lease fence.
"""

import contextlib
import json
import logging
import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, close_old_connections, connection

from juggernaut.db import listen_backoff, listen_connect_params
from juggernaut.engine import handlers, services
from juggernaut.engine.errors import EngineError
from juggernaut.engine.handlers import HandlerContext, PermanentError, TaskReleased
from juggernaut.engine.models import BUILTIN_OWNER, Task, Worker

log = logging.getLogger(__name__)


class Waker:
    """Blocks until a task may be claimable: Postgres ``LISTEN`` when available, else local polling.

    A lost ``LISTEN`` connection (a server restart) is reopened with backoff for as long as the worker
    lives; in between the worker polls, so it is slower for a while but never stuck. Work announced
    while the connection was down is found by the claim that follows every wait.
    """

    def __init__(self) -> None:
        self.listen: psycopg.Connection | None = None
        self.seen = services.local_wake.generation
        self.postgres = connection.vendor == "postgresql"
        self.backoff = 0.0
        self.retry_at = 0.0
        self.lost = False
        self.wakes = {"notify": 0, "timeout": 0}  # how the waits ended (NOTIFY or the timeout), for tests
        if self.postgres:
            self._connect()

    def _connect(self) -> None:
        try:
            listen = psycopg.connect(**listen_connect_params())
            listen.execute(f"LISTEN {services.WAKE_CHANNEL}")
        except psycopg.Error as exc:
            self.backoff = listen_backoff(self.backoff)
            self.retry_at = time.monotonic() + self.backoff
            log.warning("LISTEN unavailable (%s); polling, next try in %.0f s", exc, self.backoff)
            return
        if self.lost:
            log.info("LISTEN connection back; woken by NOTIFY again")
        self.listen, self.backoff, self.lost = listen, 0.0, False

    def wait(self, timeout: float) -> None:
        if self.postgres and self.listen is None and time.monotonic() >= self.retry_at:
            self._connect()
        if self.listen is not None:
            try:
                woken = False
                for _ in self.listen.notifies(timeout=timeout, stop_after=1):
                    woken = True
                self.wakes["notify" if woken else "timeout"] += 1
                return
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); polling until it is back", exc)
                self.close()
                self.lost = True
                self.retry_at = 0.0  # the first try is at once; failures back off from there
        self.seen = services.local_wake.wait(self.seen, timeout)

    def close(self) -> None:
        if self.listen is not None:
            try:
                self.listen.close()
            finally:
                self.listen = None


class WorkerLoop:
    """One worker: ``run()`` blocks until ``stop()`` (or until idle, with ``exit_when_idle``)."""

    def __init__(
        self,
        name: str,
        *,
        capabilities: list[str] | None = None,
        concurrency: int = 1,
        poll_seconds: float = 2.0,
        grace_seconds: float = 20.0,
        heartbeat_seconds: float | None = None,
        batch: int | None = None,
    ) -> None:
        self.name = name
        self.capabilities = handlers.all_capabilities() if capabilities is None else list(capabilities)
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.heartbeat_seconds = heartbeat_seconds or max(
            0.2, min(settings.ENGINE_HEARTBEAT_SECONDS, settings.ENGINE_LEASE_SECONDS / 3)
        )
        self.batch = batch or concurrency
        self.worker: Worker | None = None
        self.stopping = threading.Event()  # no more claims; handlers are asked to wrap up
        self.wakeup = threading.Event()
        self.running: dict[int, HandlerContext] = {}
        self.inbox: queue.Queue[tuple[Task, HandlerContext] | None] = queue.Queue()
        self.lock = threading.Lock()
        self.completed = 0
        self.failed = 0
        self.error: str | None = None
        # The name now belongs to another owner (an admin's takeover): restarting would not help.
        self.identity_taken = False

    # -- control --

    def stop(self) -> None:
        """Ask the loop to finish (safe from a signal handler or another thread)."""
        self.stopping.set()
        self.wakeup.set()
        services.local_wake.notify()  # an idle loop waiting for work notices at once (SQLite path)
        with self.lock:
            for ctx in self.running.values():
                ctx.stopping.set()

    # -- the loop --

    def run(self, *, exit_when_idle: bool = False) -> None:
        # It runs exactly the kinds it has handlers for; anything else stays for another worker.
        try:
            self.worker = services.worker_register(
                self.name,
                capabilities=self.capabilities,
                concurrency=self.concurrency,
                kinds=[h.kind for h in handlers.registered()],
                restarted_after=settings.HQ_HUNG_SECONDS if settings.HQ_HEARTBEAT_FILE else None,
            )
        except EngineError as exc:
            if exc.code != "name_taken":
                raise
            self.error, self.identity_taken = f"worker name taken: {exc.message}", True
            log.error("worker %s: %s", self.name, exc.message)
            return
        log.info(
            "worker %s registered (capabilities: %s, incarnation %s)",
            self.name,
            ", ".join(self.capabilities) or "none",
            self.worker.incarnation,
        )
        beat = threading.Thread(target=self._heartbeat_loop, name=f"{self.name}-heartbeat", daemon=True)
        beat.start()
        for n in range(self.concurrency):
            threading.Thread(target=self._runner, name=f"{self.name}-runner-{n}", daemon=True).start()
        waker = Waker()
        try:
            while not self.stopping.is_set():
                free = self.concurrency - len(self.running)
                if free <= 0:
                    self.wakeup.wait(self.poll_seconds)
                    self.wakeup.clear()
                    continue
                claimed = self._claim(min(free, self.batch))
                if claimed is None:
                    break
                for task in claimed:
                    self._start(task)
                if claimed:
                    continue
                if exit_when_idle and not self.running:
                    break
                if self.running:
                    # Woken early by a finishing task or a stop; new work is noticed on the next claim.
                    self.wakeup.wait(min(self.poll_seconds, 0.5))
                    self.wakeup.clear()
                else:
                    waker.wait(self.poll_seconds)
                    close_old_connections()  # idle for a while: the next claim gets a checked connection
        finally:
            waker.close()
            self._shutdown()
            self.stopping.set()
            for _ in range(self.concurrency):
                self.inbox.put(None)
            beat.join(timeout=5)
            connection.close()

    def _claim(self, limit: int) -> list[Task] | None:
        assert self.worker is not None  # noqa: S101 - narrows the type; run() registers the worker first
        try:
            return services.task_claim(self.worker, incarnation=self.worker.incarnation, limit=limit)
        except EngineError as exc:
            if exc.code in ("stale_incarnation", "worker_stopped", "not_found"):
                self._identity_lost(exc)
                return None
            raise
        except DatabaseError:
            log.exception("worker %s: claim failed; retrying", self.name)
            close_old_connections()
            time.sleep(min(self.poll_seconds, 1.0))
            return []

    def _start(self, task: Task) -> None:
        ctx = HandlerContext(
            task_id=task.pk, kind=task.kind, title=task.title, payload=task.payload, attempt=task.attempts
        )
        with self.lock:
            self.running[task.pk] = ctx
            if self.stopping.is_set():
                ctx.stopping.set()
        self.inbox.put((task, ctx))

    def _runner(self) -> None:
        try:
            while (item := self.inbox.get()) is not None:
                # A connection idle since the last task may have died with a server restart: hand it
                # back (the pool checks the next one before lending it; without a pool, Django's
                # health check tries it on first use), so the task's report does not fail on it.
                close_old_connections()
                self._run_task(*item)
        finally:
            connection.close()

    def _run_task(self, task: Task, ctx: HandlerContext) -> None:
        assert self.worker is not None  # noqa: S101 - narrows the type; run() registers the worker first
        fence = {"worker_id": self.worker.pk, "incarnation": self.worker.incarnation}
        try:
            handler = handlers.lookup(task.kind)
            try:
                if handler is None:
                    raise RuntimeError(f"worker {self.name} has no handler for kind {task.kind!r}")
                result = _jsonable(handler.func(ctx))
            except TaskReleased as exc:
                services.task_release(task.pk, reason=f"released: {exc}", **fence)
                return
            except PermanentError as exc:
                self.failed += 1
                services.task_fail(task.pk, error=str(exc) or exc.__class__.__name__, permanent=True, **fence)
                return
            except Exception as exc:  # a handler's bug is the task's failure, never the worker's
                self.failed += 1
                tail = "".join(traceback.format_exception(exc)[-3:])
                services.task_fail(task.pk, error=f"{exc.__class__.__name__}: {exc}\n{tail}", **fence)
                return
            services.task_complete(task.pk, result=result, **fence)
            self.completed += 1
        except EngineError as exc:
            # Most often lease_lost: we were too slow, or an operator cancelled or reassigned it.
            log.warning("worker %s: report for task #%s refused: %s", self.name, task.pk, exc.message)
        except DatabaseError:
            log.exception("worker %s: could not report task #%s; its lease will expire", self.name, task.pk)
            connection.close()  # broken or not, the next task starts on a fresh one
        finally:
            with self.lock:
                self.running.pop(task.pk, None)
            self.wakeup.set()

    def _heartbeat_loop(self) -> None:
        assert self.worker is not None  # noqa: S101 - narrows the type; run() registers the worker first
        try:
            _touch_heartbeat_file()
            while not self.stopping.wait(self.heartbeat_seconds):
                self._beat()
                _touch_heartbeat_file()
        finally:
            connection.close()

    def _beat(self) -> None:
        assert self.worker is not None  # noqa: S101 - narrows the type; run() registers the worker first
        try:
            services.worker_heartbeat(self.worker, incarnation=self.worker.incarnation)
        except EngineError as exc:
            self._identity_lost(exc)
            self.stop()
            return
        except DatabaseError:
            log.exception("worker %s: heartbeat failed", self.name)
            close_old_connections()
            return
        with self.lock:
            held = list(self.running.items())
        for task_id, ctx in held:
            try:
                services.task_heartbeat(
                    task_id, worker_id=self.worker.pk, incarnation=self.worker.incarnation
                )
            except EngineError:
                with self.lock:
                    still_running = task_id in self.running
                if still_running:  # not just finished between our snapshot and the heartbeat
                    log.warning(
                        "worker %s: lost the lease on task #%s; asking it to stop", self.name, task_id
                    )
                    ctx.stopping.set()
            except DatabaseError:
                log.exception("worker %s: task heartbeat failed", self.name)
                close_old_connections()

    def _identity_lost(self, exc: EngineError) -> None:
        """Someone registered this name since: a restart of ours, or another owner taking it over."""
        self.error = f"worker identity lost: {exc.message}"
        log.error("worker %s: %s; stopping", self.name, exc.message)
        try:
            owner = Worker.objects.filter(name=self.name).values_list("owner", flat=True).first()
        except DatabaseError:  # then it reads as a plain crash, and a restart finds out
            close_old_connections()
            return
        self.identity_taken = owner is not None and owner != BUILTIN_OWNER

    def _shutdown(self) -> None:
        """Wait up to the grace period for running tasks, release the rest, and sign off."""
        assert self.worker is not None  # noqa: S101 - narrows the type; run() registers the worker first
        self.stop()
        deadline = time.monotonic() + self.grace_seconds
        while self.running and time.monotonic() < deadline:
            self.wakeup.wait(0.1)
            self.wakeup.clear()
        try:
            # Signing off releases whatever is still running, without charging an attempt.
            services.worker_stop(self.worker, incarnation=self.worker.incarnation)
        except EngineError as exc:
            log.warning("worker %s: sign-off refused: %s", self.name, exc.message)
        except DatabaseError:
            log.exception("worker %s: sign-off failed; leases will expire instead", self.name)
        log.info("worker %s stopped (%d done, %d failed)", self.name, self.completed, self.failed)


def _touch_heartbeat_file() -> None:
    """Tell the supervisor (``make run``) this process is not hung; a touch needs no database, so an
    outage of the database never looks like a hang."""
    if settings.HQ_HEARTBEAT_FILE:
        with contextlib.suppress(OSError):
            Path(settings.HQ_HEARTBEAT_FILE).touch()


def _jsonable(result: Any) -> Any:
    try:
        return json.loads(json.dumps(result, cls=DjangoJSONEncoder))
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"handler returned a result JSON cannot hold: {exc}") from exc
