"""``manage.py engine_worker``: the built-in worker (runhq starts it as ``--name builtin``)."""

import os
import signal
import socket

from django.core.management.base import BaseCommand, CommandError

from juggernaut.db import pool_at_least
from juggernaut.engine import handlers
from juggernaut.engine.worker import WorkerLoop
from juggernaut.exits import EXIT_IDENTITY_TAKEN


class Command(BaseCommand):
    help = "Run an engine worker: claim tasks whose capabilities it has and run their handlers."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--name", default=f"{socket.gethostname()}-{os.getpid()}", help="Unique worker name."
        )
        parser.add_argument(
            "--capabilities",
            default=None,
            help="Comma-separated capabilities (default: every registered handler's capabilities).",
        )
        parser.add_argument("--concurrency", type=int, default=1, help="Tasks run at once (default 1).")
        parser.add_argument("--poll", type=float, default=2.0, help="Seconds between claims when idle.")
        parser.add_argument(
            "--grace", type=float, default=20.0, help="Seconds to let running tasks finish on SIGTERM."
        )
        parser.add_argument("--exit-when-idle", action="store_true", help="Stop once the queue is empty.")

    def handle(self, *args, name: str, capabilities, concurrency: int, poll: float, grace: float, **options):
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        caps = None
        if capabilities is not None:
            caps = [c.strip() for c in capabilities.split(",") if c.strip()]
        # Each runner thread, the heartbeat and the claim loop may hold a connection at once.
        pool_at_least(concurrency + 3)
        loop = WorkerLoop(
            name, capabilities=caps, concurrency=concurrency, poll_seconds=poll, grace_seconds=grace
        )

        def stop(signum, frame) -> None:
            loop.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        kinds = ", ".join(h.kind for h in handlers.registered())
        self.stdout.write(
            f"engine worker {name}: capabilities {', '.join(loop.capabilities) or 'none'}; kinds {kinds}"
        )
        loop.run(exit_when_idle=options["exit_when_idle"])
        self.stdout.write(f"engine worker {name} stopped: {loop.completed} done, {loop.failed} failed")
        if loop.identity_taken:
            # A distinct exit code, so runhq leaves this worker stopped instead of crash-looping on it.
            raise CommandError(
                f"{loop.error}; run this worker under another name (--name)", returncode=EXIT_IDENTITY_TAKEN
            )
        if loop.error:
            raise CommandError(loop.error)
