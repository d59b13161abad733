"""``manage.py fingerprint_file INPUT [--raw]``: the fingerprint id of every line of a file, as CSV."""

import csv
import sys

from django.core.management.base import BaseCommand, CommandError

from logscrawler.fingerprint import Fingerprinter


class Command(BaseCommand):
    help = (
        "Fingerprint each line of INPUT ('-' for stdin) with a fresh fingerprinter and print "
        "'line,fingerprint_id' CSV (line numbers from 1). Ids are the final ones: a template that "
        "merges later in the file carries its first id for all its lines, as stored fingerprints do."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("input", help="A log file, one event per line, or '-' for stdin.")
        parser.add_argument(
            "--raw", action="store_true", help="Lines carry headers (timestamps, levels, pids, hosts)."
        )

    def handle(self, *args, input: str, raw: bool, **options) -> None:
        path = sys.stdin.fileno() if input == "-" else input
        try:
            with open(path, encoding="utf-8", errors="replace", newline="", closefd=input != "-") as source:
                lines = [line.rstrip("\r\n") for line in source]
        except OSError as exc:
            raise CommandError(f"cannot read {input}: {exc.strerror}") from exc
        ids = Fingerprinter(raw=raw).fingerprint_all(lines)
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow(["line", "fingerprint_id"])
        writer.writerows(enumerate(ids, start=1))
