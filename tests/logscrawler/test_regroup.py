"""A change of the grouping rules keeps stored fingerprints: same id, counts and operator's mark."""

from datetime import UTC, datetime, timedelta

import pytest

from logscrawler import services
from logscrawler.models import (
    ErrorFingerprint,
    ErrorMinute,
    ErrorOccurrence,
    FingerprintStatus,
    LogLine,
    LogService,
)
from logscrawler.regroup import fingerprints_regroup
from logscrawler.services import Record

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/app/shop/views.py", line {line}, in order_list\n'
    "    orders = list(Order.objects.all())\n"
    "django.db.utils.OperationalError: canceling statement due to statement timeout"
)


def ingest(service: LogService, text: str, seconds: int) -> None:
    services.logs_ingest(
        service, [Record(timestamp=T0 + timedelta(seconds=seconds), message=text, severity="error")]
    )


def as_older_version(row: ErrorFingerprint, key: str) -> None:
    """What a fingerprint stored by the previous rules looks like: another key, another version."""
    ErrorFingerprint.objects.filter(pk=row.pk).update(key=key, grouping_version="2")


def regroup() -> int:
    return fingerprints_regroup(ErrorFingerprint, ErrorOccurrence, LogLine, ErrorMinute)


@pytest.mark.django_db
def test_it_keeps_a_fingerprints_id_and_resolve_mark_across_the_upgrade():
    service = LogService.objects.create(name="shop")
    ingest(service, TRACE.format(line=40), 0)
    row = ErrorFingerprint.objects.get()
    as_older_version(row, "0123456789abcdef")
    services.fingerprint_set_status(row, "ignore", actor="alice")
    regroup()
    ingest(service, TRACE.format(line=41), 60)  # the same cause after a deploy
    row.refresh_from_db()
    assert ErrorFingerprint.objects.count() == 1
    assert row.count == 2 and row.status == FingerprintStatus.IGNORED


@pytest.mark.django_db
def test_it_merges_fingerprints_of_one_cause_into_the_oldest():
    service = LogService.objects.create(name="shop")
    ingest(service, TRACE.format(line=40), 0)
    older = ErrorFingerprint.objects.get()
    as_older_version(older, "00000000000000aa")
    services.fingerprint_set_status(older, "acknowledge", actor="alice")
    ingest(service, TRACE.format(line=40), 30)
    newer = ErrorFingerprint.objects.exclude(pk=older.pk).get()
    as_older_version(newer, "00000000000000bb")
    assert regroup() == 1
    older.refresh_from_db()
    newer.refresh_from_db()
    assert newer.merged_into_id == older.pk
    assert older.count == 2 and older.status == FingerprintStatus.ACKNOWLEDGED
    assert ErrorOccurrence.objects.filter(fingerprint=older).count() == 2
