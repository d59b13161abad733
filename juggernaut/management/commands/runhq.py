"""Run the whole HQ on one machine: web (daphne), jobs (django-q2) and the engine's built-in worker.

Children run in their own process groups, so a stop takes their own children with them; if any of
them dies, the rest are stopped too and the command exits non-zero (a supervisor restarts it).
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand

STOP_GRACE_SECONDS = 10


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
        if settings.FEATURE_APPS.get("engine", True) and "engine_worker" in get_commands():
            children["worker"] = [py, manage, "engine_worker", "--name", "builtin"]

        procs: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(signum=None, frame=None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for name, cmd in children.items():
            procs[name] = subprocess.Popen(cmd, start_new_session=True)
            self.stdout.write(f"started {name} (pid {procs[name].pid})")
        self.stdout.write(
            self.style.SUCCESS(
                f"Juggernaut HQ on http://{settings.HQ_HOST}:{settings.PORT}/ (Ctrl-C stops everything)"
            )
        )
        exit_code = 0
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with {proc.returncode}; stopping the others")
                    exit_code = 1
                    stopping = True
                    break
            time.sleep(0.3)
        self._stop_all(procs)
        self.stdout.write("stopped")
        if exit_code:
            sys.exit(exit_code)

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
