"""The web process's memory is bounded by the request: a real daphne process, its peak resident size
(``VmHWM``) read before and after the largest bodies it accepts and refuses."""

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from django.conf import settings

from logscrawler.models import LogLine, LogService
from tests.conftest import DaphneServer

pytestmark = [pytest.mark.process, pytest.mark.slow]

MB = 1024 * 1024
# The web process may grow by at most this multiple of the largest body it accepts (it holds one
# batch of parsed lines, never the body's worth).
ACCEPTED_GROWTH_FACTOR = 4
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def peak_rss(pid: int) -> int:
    """The process's peak resident set size so far, in bytes."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def body_of(size: int) -> bytes:
    """NDJSON lines of about 200 bytes, errors among them, up to ``size`` bytes."""
    lines, total, n = [], 0, 0
    while True:
        line = json.dumps(
            {
                "service": "api",
                "timestamp": (T0 + timedelta(milliseconds=n)).isoformat(),
                "message": f"payment {n} failed: card declined by bank {n % 97} after {n % 13} tries",
                "severity": "error" if n % 5 == 0 else "info",
                "attributes": {"request": f"req-{n}", "region": "eu"},
            }
        ).encode()
        if total + len(line) + 1 > size:
            return b"\n".join(lines)
        lines.append(line)
        total += len(line) + 1
        n += 1


class Zeros:
    """``total`` bytes, sent a megabyte at a time as a chunked body (no length to announce)."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __iter__(self):
        sent = 0
        while sent < self.total:
            step = min(MB, self.total - sent)
            sent += step
            yield b"0" * step


class DeclaredZeros(Zeros):
    """The same bytes, announced in Content-Length (requests reads the length)."""

    def __len__(self) -> int:
        return self.total


@pytest.fixture
def server():
    daphne = DaphneServer().start()
    try:
        yield daphne
    finally:
        daphne.close()


@pytest.mark.django_db(transaction=True)
def test_it_stores_the_largest_accepted_body_within_a_small_multiple_of_its_size(make_token, server):
    LogService.objects.create(name="api")
    headers = {"Authorization": f"Bearer {make_token('write')}", "Content-Type": "application/x-ndjson"}
    warm = requests.post(
        server.url + "/api/logs/ingest", data=body_of(64 * 1024), headers=headers, timeout=60
    )
    assert warm.status_code == 200
    body = body_of(settings.LOGS_INGEST_MAX_BYTES)
    before = peak_rss(server.proc.pid)
    response = requests.post(server.url + "/api/logs/ingest", data=body, headers=headers, timeout=600)
    growth = peak_rss(server.proc.pid) - before
    assert response.status_code == 200, response.text[:300]
    result = response.json()
    assert result["rejected"] == [] and result["accepted"] + result["duplicates"] == body.count(b"\n") + 1
    assert LogLine.objects.count() > 40_000
    print(
        f"\n{len(body) / MB:.1f} MB accepted: peak RSS {before / MB:.0f} -> {(before + growth) / MB:.0f} MB"
    )
    assert growth < ACCEPTED_GROWTH_FACTOR * len(body)

    # the same size of lines that are all bad (JSON, but not objects): the answer lists 100 of them,
    # memory stays as flat
    line = b"[" + b"1," * 48 + b"1]\n"
    count = settings.LOGS_INGEST_MAX_BYTES // len(line)
    bad = line * count
    before = peak_rss(server.proc.pid)
    response = requests.post(server.url + "/api/logs/ingest", data=bad, headers=headers, timeout=600)
    growth = peak_rss(server.proc.pid) - before
    assert response.status_code == 200 and response.json()["rejected_more"] == count - 100
    assert len(response.content) < 10_000
    print(
        f"{len(bad) / MB:.1f} MB of bad lines: peak RSS {before / MB:.0f} -> {(before + growth) / MB:.0f} MB"
    )
    assert growth < ACCEPTED_GROWTH_FACTOR * len(bad)


@pytest.mark.django_db(transaction=True)
def test_it_refuses_oversized_uploads_before_authentication_without_keeping_them(server):
    url = server.url + "/api/logs/ingest"

    def three_at_once(size: int) -> list[requests.Response]:
        """Three uploads at once, as one attacker would send them: two announce their size, one is
        chunked; none carries a valid token."""
        answers: list[requests.Response] = []

        def upload(declared: bool) -> None:
            headers = {"Content-Type": "application/x-ndjson", "Authorization": "Bearer not-a-token"}
            data = DeclaredZeros(size) if declared else Zeros(size)
            answers.append(requests.post(url, data=data, headers=headers, timeout=600))

        uploads = [threading.Thread(target=upload, args=(declared,)) for declared in (True, True, False)]
        for thread in uploads:
            thread.start()
        for thread in uploads:
            thread.join()
        return answers

    # a first round just over the limit pays for what any first requests cost (buffers, imports)
    warm = three_at_once(settings.LOGS_INGEST_MAX_BYTES + MB)
    assert [a.status_code for a in warm] == [413, 413, 413]
    before = peak_rss(server.proc.pid)
    size = 300 * MB
    answers = three_at_once(size)
    growth = peak_rss(server.proc.pid) - before
    assert [a.status_code for a in answers] == [413, 413, 413]
    assert {a.json()["error"]["code"] for a in answers} == {"body_too_large"}  # not 401: never read
    print(f"\n3 x 300 MB refused: peak RSS {before / MB:.0f} -> {(before + growth) / MB:.0f} MB")
    # not even a tenth of one upload: what grows is buffers of fixed size, not bodies
    assert growth < size // 10

    # the general limit holds elsewhere, before any view or authentication too
    small = requests.post(server.url + "/api/engine/tasks", data=b"x" * (3 * MB), timeout=60)
    assert (
        small.status_code == 413 and small.json()["error"]["details"]["limit"] == settings.HQ_MAX_BODY_BYTES
    )
