"""``manage.py fingerprint_file INPUT [--raw | --ndjson]``: the fingerprint of every line of a file, as CSV."""

import csv
import sys

from django.core.management.base import BaseCommand, CommandError

from logscrawler.fingerprint import Fingerprinter
from logscrawler.ingest import ndjson_fingerprint


class Command(BaseCommand):
    help = (
        "Fingerprint each line of INPUT ('-' for stdin) with a fresh fingerprinter and print "
        "'line,fingerprint' CSV (line numbers from 1). Ids are the final ones: a template that "
        "merges later in the file carries its first id for all its lines, as stored fingerprints do. "
        "With --ndjson, INPUT holds the records POST /api/logs/ingest takes and they go through the "
        "ingest path (parse, fold per service, fingerprint) without a database: a record folded into "
        "an earlier record's event carries that event's fingerprint, one that is not an error none."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("input", help="A log file, one event per line, or '-' for stdin.")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--raw", action="store_true", help="Lines carry headers (timestamps, levels, pids, hosts)."
        )
        mode.add_argument(
            "--ndjson",
            action="store_true",
            help="Lines are ingest records {service, timestamp, message, ...}.",
        )

    def handle(self, *args, input: str, raw: bool, ndjson: bool, **options) -> None:
        path = sys.stdin.fileno() if input == "-" else input
        try:
            with open(path, encoding="utf-8", errors="replace", newline="", closefd=input != "-") as source:
                lines = [line.rstrip("\r\n") for line in source]
        except OSError as exc:
            raise CommandError(f"cannot read {input}: {exc.strerror}") from exc
        if ndjson:
            ids, rejected = ndjson_fingerprint([line.encode("utf-8") for line in lines])
            for number, reason in rejected:
                self.stderr.write(f"line {number}: {reason}")
        else:
            ids = Fingerprinter(raw=raw).fingerprint_all(lines)
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow(["line", "fingerprint" if ndjson else "fingerprint_id"])
        writer.writerows(enumerate(ids, start=1))
