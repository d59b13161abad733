"""Storage across batches: fingerprints resume, merge with their history, regress; import_logs; prune."""

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from logscrawler import selectors, services
from logscrawler.models import (
    ErrorFingerprint,
    ErrorMinute,
    ErrorOccurrence,
    FingerprintStatus,
    LogAlert,
    LogLine,
    LogService,
)
from logscrawler.services import Record

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def web(db):
    return LogService.objects.create(name="web")


def error(message: str, minute: int = 0, **kwargs) -> Record:
    return Record(timestamp=T0 + timedelta(minutes=minute), message=message, severity="error", **kwargs)


def test_it_resumes_templates_across_batches_and_merges_their_history(web):
    services.logs_ingest(web, [error("login failed for alice", 0)])
    services.logs_ingest(web, [error("login failed for bob", 1), error("login failed for carol", 2)])
    assert ErrorFingerprint.objects.filter(merged_into__isnull=True).count() == 3
    services.logs_ingest(web, [error("login failed for dave", 3)])
    live = ErrorFingerprint.objects.get(merged_into__isnull=True)
    assert live.template == "login failed for <*>" and live.count == 4
    assert ErrorFingerprint.objects.filter(merged_into=live).count() == 2
    assert list(LogAlert.objects.filter(closed_at__isnull=True).values_list("fingerprint", flat=True)) == [
        live.pk
    ]
    assert sum(ErrorMinute.objects.filter(fingerprint=live).values_list("count", flat=True)) == 4
    assert LogLine.objects.filter(fingerprint=live).count() == 4
    services.logs_ingest(web, [error("login failed for erin", 4)])
    assert ErrorFingerprint.objects.get(pk=live.pk).count == 5
    assert [fp.count for fp, _ in selectors.top_errors("24h", now=T0 + timedelta(minutes=5))] == [5]


def test_it_marks_a_resolved_fingerprint_regressed_when_it_comes_back(web):
    services.logs_ingest(web, [error("queue stalled", 0)])
    ErrorFingerprint.objects.update(status=FingerprintStatus.RESOLVED)
    result = services.logs_ingest(web, [error("queue stalled", 5)])
    fp = ErrorFingerprint.objects.get()
    assert fp.status == FingerprintStatus.REGRESSED and result.regressed_fingerprints == [fp.pk]
    assert result.new_fingerprints == []


def test_it_stores_nothing_of_a_batch_that_fails(web, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "_rollups_add", boom)
    with pytest.raises(RuntimeError):
        services.logs_ingest(web, [error("one", 0), error("two", 1)])
    assert LogLine.objects.count() == 0 and ErrorFingerprint.objects.count() == 0
    monkeypatch.undo()
    assert services.logs_ingest(web, [error("one", 0), error("two", 1)]).accepted == 2


def test_it_imports_a_file_once(db, tmp_path):
    path = tmp_path / "worker.log"
    path.write_bytes(
        b"2026-05-01 12:00:00 INFO started\n"
        b"2026-05-01 12:00:01 ERROR job 7 crashed\n"
        b'{"timestamp": "2026-05-01T12:00:02Z", "message": "job 8 crashed", "severity": "error"}\n'
        b"\xff\xfe not text\n"
    )
    out, err = io.StringIO(), io.StringIO()
    call_command("import_logs", str(path), "--service", "worker", stdout=out, stderr=err)
    assert "3 stored, 0 duplicates, 1 rejected" in out.getvalue() and "line 4" in err.getvalue()
    fp = ErrorFingerprint.objects.get(service__name="worker")
    assert fp.template == "job <*> crashed" and fp.count == 2
    call_command("import_logs", str(path), "--service", "worker", stdout=out, stderr=io.StringIO())
    assert "0 stored, 3 duplicates" in out.getvalue()
    assert LogLine.objects.count() == 3


def test_it_keeps_two_files_of_the_same_name_apart_and_imports_each_once(db, tmp_path):
    lines = b"2026-05-01 12:00:00 ERROR job 7 crashed\n2026-05-01 12:00:01 ERROR job 8 crashed\n"
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a" / "app.log").write_bytes(lines)
    (tmp_path / "b" / "app.log").write_bytes(b"2026-05-01 13:00:00 ERROR disk 3 full\n" + lines)
    out = io.StringIO()
    for path in (tmp_path / "a" / "app.log", tmp_path / "b" / "app.log", tmp_path / "a" / "app.log"):
        call_command("import_logs", str(path), "--service", "worker", stdout=out, stderr=io.StringIO())
    assert out.getvalue().splitlines() == [
        "worker: 2 stored, 0 duplicates, 0 rejected",
        "worker: 3 stored, 0 duplicates, 0 rejected",  # same name, another file: nothing in common
        "worker: 0 stored, 2 duplicates, 0 rejected",
    ]
    # the same file with lines appended stores only the new ones
    with (tmp_path / "a" / "app.log").open("ab") as more:
        more.write(b"2026-05-01 12:00:02 ERROR job 9 crashed\n")
    call_command("import_logs", str(tmp_path / "a" / "app.log"), "--service", "worker", stdout=out)
    assert out.getvalue().splitlines()[-1] == "worker: 1 stored, 2 duplicates, 0 rejected"
    assert LogLine.objects.count() == 6


def test_it_prunes_old_lines_but_keeps_fingerprints(web, settings):
    settings.LOGS_RETENTION_DAYS = 7
    services.logs_ingest(web, [error("old", 0), error("recent", 60 * 24 * 10)])
    assert services.logs_prune(now=T0 + timedelta(days=10, minutes=1)) >= 1
    assert list(LogLine.objects.values_list("message", flat=True)) == ["recent"]
    assert ErrorFingerprint.objects.count() == 2


def test_it_prunes_in_bounded_batches_without_reading_the_lines(web, settings):
    settings.LOGS_RETENTION_DAYS = 7
    settings.HQ_PRUNE_BATCH = 3
    old = [error(f"job {i} crashed with code {i}", i) for i in range(10)]
    services.logs_ingest(web, [*old, error("recent", 60 * 24 * 10)])
    with CaptureQueriesContext(connection) as queries:
        assert services.logs_prune(now=T0 + timedelta(days=10, minutes=1)) == 10
    sql = [q["sql"] for q in queries.captured_queries]
    line_deletes = [s for s in sql if s.startswith('DELETE FROM "railway_logs"')]
    # Postgres binds the keys as one array or a list: count the keys named in each statement
    sizes = [len(re.findall(r"\d+", s.split(" IN ", 1)[1])) for s in line_deletes]
    assert sizes == [3, 3, 3, 1]
    assert not any('"railway_logs"."message"' in s for s in sql)  # no line was loaded to be deleted
    assert list(LogLine.objects.values_list("message", flat=True)) == ["recent"]
    assert ErrorOccurrence.objects.count() == 1
