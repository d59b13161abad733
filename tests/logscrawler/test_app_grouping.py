"""Application errors (Python, Node, Go, Java, indented blocks) grouped one fingerprint per cause, the
same through POST /api/logs/ingest and through ``manage.py fingerprint_file --ndjson``."""

import csv
import io

import pytest
from django.core.management import call_command

from logscrawler.models import LogLine, LogService
from tests.logscrawler.appevents.events import event_accuracy, ndjson, records


def offline(tmp_path) -> list[str]:
    path = tmp_path / "events.ndjson"
    path.write_bytes(ndjson())
    out = io.StringIO()
    call_command("fingerprint_file", str(path), "--ndjson", stdout=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["line", "fingerprint"]
    assert [int(row[0]) for row in rows[1:]] == list(range(1, len(rows)))
    return [row[1] for row in rows[1:]]


def test_it_groups_every_format_one_fingerprint_per_cause_offline(tmp_path):
    fingerprints = offline(tmp_path)
    lines, expected = records()
    assert len(fingerprints) == len(lines)
    assert all(f == "" for f, item in zip(fingerprints, expected, strict=True) if item is None)
    assert event_accuracy(expected, fingerprints) == 1.0


@pytest.mark.django_db
def test_it_groups_the_same_through_the_api_as_offline(client, bearer, tmp_path):
    for name in ("shop", "web", "api", "jvm", "worker", "proxy"):
        LogService.objects.create(name=name)
    response = client.post(
        "/api/logs/ingest", data=ndjson(), content_type="application/x-ndjson", **bearer("write")
    )
    assert response.status_code == 200, response.content
    lines, expected = records()
    assert response.json()["accepted"] == len(lines)
    stored = {
        (line.service.name, line.timestamp.isoformat()): (line.fingerprint.key if line.fingerprint else "")
        for line in LogLine.objects.select_related("service", "fingerprint")
    }
    fingerprints = offline(tmp_path)
    starts = {}
    for record, item, fingerprint in zip(lines, expected, fingerprints, strict=True):
        key = item[0] if item else id(record)
        starts.setdefault(key, ((record["service"], record["timestamp"]), fingerprint))
    assert len(stored) == len(starts)  # one stored line per event: nothing cut, nothing joined
    assert dict(starts.values()) == stored


def test_it_names_the_route_and_status_class_of_an_access_line():
    from logscrawler.fingerprint import Fingerprinter

    fingerprinter = Fingerprinter(raw=True)
    first = fingerprinter.fingerprint("2026-05-01T12:00:00Z GET /api/orders/42 500 12ms")
    again = fingerprinter.fingerprint("2026-05-01T12:00:09Z GET /api/orders/977 503 40ms")
    other = fingerprinter.fingerprint("2026-05-01T12:00:09Z GET /api/invoices/977 503 40ms")
    assert first.template == "GET /api/orders/{id} → 5xx"
    assert first.id == again.id != other.id
