"""Run the whole HQ on one machine: web (daphne), jobs (django-q2) and the engine's built-in worker.

Children run in their own process groups, so a stop takes their own children with them. A child that
dies is restarted with backoff (``HQ_RESTART_BACKOFF_SECONDS`` doubling per recent exit, at most 30 s),
and the Overview's activity feed says so. A child with a heartbeat (the engine worker touches
``HQ_HEARTBEAT_FILE`` at every beat) that has been silent for ``HQ_HUNG_SECONDS`` is hung (stopped,
deadlocked): it is killed and restarted the same way, and the feed says why. A child that exits with ``EXIT_IDENTITY_TAKEN`` (the engine
worker whose name an admin took over) is left stopped and not counted as a crash; the feed says what to
do instead, and the rest keeps running. Only a crash loop (``CRASH_LOOP_EXITS`` exits of one child within
``CRASH_LOOP_SECONDS``) stops everything, with the reason printed, and exits non-zero for a service
manager to act on.
"""

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from juggernaut.events import publish
from juggernaut.exits import EXIT_IDENTITY_TAKEN

STOP_GRACE_SECONDS = 10
CRASH_LOOP_EXITS = 5
CRASH_LOOP_SECONDS = 60.0
BACKOFF_MAX_SECONDS = 30.0

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Migrate, sync schedules, ensure an operator, then run web + jobs + worker until stopped."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-setup", action="store_true", help="Skip migrate/sync_schedules/operator.")

    def handle(self, *args, no_setup: bool, **options) -> None:
        if not no_setup:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("sync_schedules")
            call_command("ensure_operator")
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        py = sys.executable
        children = {
            "web": [py, "-m", "juggernaut.serve", "-b", settings.HQ_HOST, "-p", str(settings.PORT)]
            # Client addresses from X-Forwarded-For only when a proxy we trust sets them.
            + (["--proxy-headers"] if settings.HQ_BEHIND_PROXY else [])
            + ["juggernaut.asgi:application"],
            "jobs": [py, manage, "qcluster"],
        }
        # What an operator does once a child's identity was taken over (it is not restarted).
        instead: dict[str, str] = {}
        if "engine_worker" in get_commands():
            children["worker"] = [py, manage, "engine_worker", "--name", "builtin"]
            instead["worker"] = (
                "another owner took over its worker name builtin, so restarting it would only be refused; "
                "to run a worker here again, start one under another name: "
                "python manage.py engine_worker --name builtin-2"
            )

        # Children with a heartbeat: the file each touches while it is not hung.
        beats: dict[str, Path] = {}
        if "worker" in children:
            beats["worker"] = Path(settings.VAR_DIR) / "heartbeat-worker"
        procs: dict[str, subprocess.Popen] = {}
        started: dict[str, float] = {}
        hung: dict[str, float] = {}
        stopping = False

        def spawn(name: str) -> subprocess.Popen:
            env = None
            if name in beats:
                env = {**os.environ, "HQ_HEARTBEAT_FILE": str(beats[name])}
                with contextlib.suppress(OSError):
                    beats[name].unlink()
            started[name] = time.monotonic()
            return subprocess.Popen(children[name], start_new_session=True, env=env)  # noqa: S603 - the HQ's own commands, built in this file

        def silent_for(name: str) -> float:
            """Seconds since the child's last sign of life (its heartbeat file, else its start)."""
            try:
                since = time.time() - beats[name].stat().st_mtime
            except OSError:
                since = float("inf")
            return min(since, time.monotonic() - started[name])

        def stop(signum=None, frame=None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for name in children:
            procs[name] = spawn(name)
            self.stdout.write(f"started {name} (pid {procs[name].pid})")
        self.stdout.write(
            self.style.SUCCESS(
                f"Juggernaut HQ on http://{settings.HQ_HOST}:{settings.PORT}/ (Ctrl-C stops everything)"
            )
        )
        exit_code = 0
        exits: dict[str, deque[float]] = {name: deque() for name in children}
        restart_at: dict[str, float] = {}
        while not stopping:
            now = time.monotonic()
            for name, proc in list(procs.items()):
                if name in restart_at:
                    if now >= restart_at[name]:
                        del restart_at[name]
                        procs[name] = spawn(name)
                        self.stdout.write(f"restarted {name} (pid {procs[name].pid})")
                    continue
                if proc.poll() is None:
                    silent = silent_for(name) if name in beats else 0.0
                    if silent >= settings.HQ_HUNG_SECONDS:
                        hung[name] = silent
                        _signal_group(proc, signal.SIGKILL)  # a stopped process dies of SIGKILL too
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            proc.wait(timeout=5)
                    if proc.poll() is None:
                        continue
                if proc.returncode == EXIT_IDENTITY_TAKEN:
                    del procs[name]  # not a crash: left stopped, and the rest keeps running
                    why = instead.get(name, "its identity now belongs to another owner")
                    message = (
                        f"{name} stopped (exit code {proc.returncode}) and is not restarted: {why}. "
                        f"{' and '.join(procs)} keep running."
                    )
                    self.stderr.write(message)
                    self._announce("process_not_restarted", name, message)
                    continue
                recent = exits[name]
                recent.append(now)
                while recent and now - recent[0] > CRASH_LOOP_SECONDS:
                    recent.popleft()
                if len(recent) >= CRASH_LOOP_EXITS:
                    reason = (
                        f"{name} exited {len(recent)} times within {CRASH_LOOP_SECONDS:.0f} s "
                        f"(last exit code {proc.returncode}): a crash loop; stopping everything"
                    )
                    self.stderr.write(reason)
                    self._announce("process_crash_loop", name, reason)
                    exit_code = 1
                    stopping = True
                    break
                delay = min(
                    BACKOFF_MAX_SECONDS, settings.HQ_RESTART_BACKOFF_SECONDS * 2.0 ** (len(recent) - 1)
                )
                what = f"{name} exited with code {proc.returncode}"
                if name in hung:
                    what = (
                        f"{name} hung: no heartbeat for {hung.pop(name):.0f} s "
                        f"(limit HQ_HUNG_SECONDS={settings.HQ_HUNG_SECONDS}); killed it"
                    )
                message = (
                    f"{what}; restarting it in {delay:.1f} s "
                    f"(exit {len(recent)} of {CRASH_LOOP_EXITS} allowed in {CRASH_LOOP_SECONDS:.0f} s)"
                )
                self.stderr.write(message)
                self._announce("process_restarted", name, message)
                restart_at[name] = now + delay
            time.sleep(0.3)
        self._stop_all(procs)
        self.stdout.write("stopped")
        if exit_code:
            sys.exit(exit_code)

    def _announce(self, type: str, name: str, message: str) -> None:
        """On the Overview's activity feed (the hq topic); the database may be what failed, so best effort."""
        try:
            publish("hq", type, {"process": name, "message": message})
        except Exception as exc:  # the line is already on stderr
            log.warning("could not record %s on the Overview: %s", type, exc)
        finally:
            close_old_connections()

    def _stop_all(self, procs: dict[str, subprocess.Popen]) -> None:
        for proc in procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        # Anything left in a child's group (a stuck worker, a grandchild) is killed.
        for proc in procs.values():
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
