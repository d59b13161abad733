"""``manage.py import_logs FILE --service NAME``: store a log file as if its service had sent it."""

import hashlib
import json
import os
import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from logscrawler import services
from logscrawler.ingest import record_from_object
from logscrawler.services import Record, text_clean

BATCH = 2000


class Command(BaseCommand):
    help = (
        "Import FILE ('-' for stdin) into the service NAME (created when new). A line is an NDJSON "
        "record {timestamp, message, severity?, attributes?, id?} or a plain log line; plain lines are "
        "stamped with the import time. A line without an id is identified by the file's absolute path, "
        "its line number and its text, so importing the same file again (or after lines were appended) "
        "stores nothing twice, while another file of the same name is another source."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file")
        parser.add_argument("--service", required=True, help="The service the lines belong to.")

    def handle(self, *args, file: str, service: str, **options) -> None:
        name = service.strip()
        if not name or len(name) > 120:
            raise CommandError("--service must be a name of 1 to 120 characters")
        path = sys.stdin.fileno() if file == "-" else file
        try:
            total = os.path.getsize(file) if file != "-" else 0
            source = open(path, "rb", closefd=file != "-")  # noqa: SIM115 - read in batches below
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        target = services.service_for_import(name)
        origin = os.path.realpath(file) if file != "-" else "stdin"
        now = timezone.now()
        accepted = duplicates = rejected = done = 0
        limit = BATCH
        batch: list[Record] = []
        with source:
            for number, raw in enumerate(source, start=1):
                done += len(raw)
                record = self._record(raw, number, origin, now)
                if record is None:
                    rejected += 1
                    self.stderr.write(f"line {number}: not a log line (invalid UTF-8 or a bad record)")
                elif record.message.strip():
                    batch.append(record)
                if len(batch) >= limit:
                    # the last event may go on in the next lines (a stack trace): it waits for them, and
                    # a batch that is all one event grows a little (up to twice its size) to finish it
                    cut = services.open_event_start(batch)
                    if cut == 0 and limit < 2 * BATCH:
                        limit += max(BATCH // 4, 1)
                        continue
                    cut, limit = cut or len(batch), BATCH
                    result = services.logs_ingest(target, batch[:cut])
                    accepted, duplicates, batch = (
                        accepted + result.accepted,
                        duplicates + result.duplicates,
                        batch[cut:],
                    )
                    self._progress(done, total, accepted)
            if batch:
                result = services.logs_ingest(target, batch)
                accepted, duplicates = accepted + result.accepted, duplicates + result.duplicates
        self._progress(done, total, accepted, final=True)
        self.stdout.write(f"{name}: {accepted} stored, {duplicates} duplicates, {rejected} rejected")

    def _record(self, raw: bytes, number: int, origin: str, now) -> Record | None:
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            return None
        # the text is part of the id: a file rewritten in place (a rotated log) is new lines, not duplicates
        seed = f"{origin}\x00{number}\x00{text}".encode("utf-8", "replace")
        source_id = f"import:{hashlib.sha256(seed).hexdigest()[:40]}"
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
                if isinstance(data, dict):
                    data.setdefault("service", "-")
                    data.setdefault("id", source_id)
                    return record_from_object(data)[1]
            except (ValueError, OverflowError, OSError):
                return None
        return Record(timestamp=now, message=text_clean(text), source_id=source_id)

    def _progress(self, done: int, total: int, accepted: int, final: bool = False) -> None:
        """A one-line progress bar on a terminal; nothing in a pipe."""
        if not self.stderr.isatty():
            return
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        self.stderr.write(f"\r[{bar:<30}] {share:4.0%} {accepted} lines", ending="\n" if final else "")
        self.stderr.flush()
