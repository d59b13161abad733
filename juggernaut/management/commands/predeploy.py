"""``manage.py predeploy``: what a deployment runs once before new processes start (Railway's pre-deploy
command, a Procfile's ``release``): apply migrations, then make the schedules match the code.

Django's ``migrate`` is not safe to run twice at once: two processes both see a migration unapplied and
both apply it (the second fails on a table that now exists). On PostgreSQL the whole step therefore runs
under a session advisory lock, taken on a connection of its own, so a second deploy (or a second replica
that runs this) waits for the first and then finds nothing left to do. SQLite serves one machine, where
deploys do not overlap.
"""

import psycopg
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection

from juggernaut.db import pg_connect_params

# Any fixed 64-bit number, the same in every release: it names "the pre-deploy step" for pg_advisory_lock.
PREDEPLOY_LOCK_KEY = 0x4A48_5150_4445_504C  # "JHQPDEPL"


class Command(BaseCommand):
    help = "Migrate and sync schedules, one process at a time (PostgreSQL advisory lock)."

    def handle(self, *args, **options) -> None:
        if connection.vendor != "postgresql":
            self._run()
            return
        with psycopg.connect(**pg_connect_params(), autocommit=True) as lock_conn:
            self.stdout.write("waiting for the pre-deploy lock")
            lock_conn.execute("SELECT pg_advisory_lock(%s)", [PREDEPLOY_LOCK_KEY])
            try:
                self._run()
            finally:
                lock_conn.execute("SELECT pg_advisory_unlock(%s)", [PREDEPLOY_LOCK_KEY])

    def _run(self) -> None:
        call_command("migrate", interactive=False, verbosity=1, stdout=self.stdout)
        call_command("sync_schedules", stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("pre-deploy done"))
