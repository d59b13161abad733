"""A scan whose jobs process died is taken over within its lease: closed failed, in words, and scanned
again once; a live scan beats while its sandboxed child analyses, and a scan taken over stays closed."""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from codehealth import services, tasks
from codehealth.findings import Finding
from codehealth.models import CodeFinding, Repository, Scan, ScanStatus
from juggernaut.schedules import declared

pytestmark = pytest.mark.django_db


def died_mid_scan(repository: Repository, *, silent_for: int) -> Scan:
    """The state a jobs process killed mid-scan leaves: a running scan whose heartbeat stopped."""
    scan = Scan.objects.create(
        repository=repository, started_at=timezone.now() - timedelta(seconds=silent_for)
    )
    Scan.objects.filter(pk=scan.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=silent_for))
    return scan


@pytest.fixture
def checkout(alice, tmp_path, local_repository):
    """``checkout(name, **fields)``: a small local repository of alice's."""

    def make(name: str, **fields) -> Repository:
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text("x = 1\n")
        return local_repository(alice, tmp_path / name, name=name, **fields)

    return make


def queued_scans() -> int:
    return sum(1 for q in OrmQ.objects.all() if q.func() == "codehealth.tasks.repository_scan")


def test_it_sweeps_scans_every_minute():
    sweep = {d.name: d for d in declared()}["hq:codehealth-sweep"]
    assert sweep.task is tasks.scans_sweep and sweep.minutes == 1


def test_it_takes_over_a_scan_silent_past_its_lease_and_scans_again(
    checkout, settings, django_capture_on_commit_callbacks
):
    settings.CODEHEALTH_SCAN_LEASE_SECONDS = 45
    repository = checkout("shop", scan_every_days=0)
    dead = died_mid_scan(repository, silent_for=50)
    alive = died_mid_scan(checkout("blog"), silent_for=10)

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.scans_sweep() == 1

    dead.refresh_from_db(), alive.refresh_from_db()
    assert dead.status == ScanStatus.FAILED and dead.finished_at is not None
    assert (
        dead.error.startswith("the scan stopped sending heartbeats 50 s ago") and "taken over" in dead.error
    )
    assert alive.status == ScanStatus.RUNNING  # within its lease
    repository.refresh_from_db()
    assert repository.scan_requested_at is not None and queued_scans() == 1
    assert tasks.scans_sweep() == 0  # closed once


def test_it_scans_again_only_once_when_the_scan_kills_its_process_again(
    checkout, django_capture_on_commit_callbacks
):
    repository = checkout("shop", scan_every_days=0)
    died_mid_scan(repository, silent_for=300)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.scans_sweep()
    assert queued_scans() == 1
    OrmQ.objects.all().delete()
    died_mid_scan(repository, silent_for=200)  # the scan again, and again its process died

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.scans_sweep() == 1
    assert queued_scans() == 0
    assert Scan.objects.filter(repository=repository, status=ScanStatus.FAILED).count() == 2


def test_it_keeps_the_words_of_the_sweep_when_a_taken_over_scan_finishes_late(checkout):
    repository = checkout("shop", scan_every_days=0)
    scan = died_mid_scan(repository, silent_for=100)
    tasks.scans_sweep()
    finding = Finding(
        kind="lint", category="ruff", path="a.py", line=1, name="F401", confidence=100, reason="x"
    )

    late = services.scan_record(scan, [finding])

    assert late.status == ScanStatus.FAILED and "taken over" in late.error
    assert not CodeFinding.objects.filter(repository=repository).exists()


def test_it_beats_while_the_sandboxed_analysis_runs(checkout, settings):
    settings.CODEHEALTH_SCAN_LEASE_SECONDS = 1  # a beat every third of a second
    repository = checkout("shop", scan_every_days=0)

    def analyse(path: Path) -> list[Finding]:
        time.sleep(2)
        return []

    started = timezone.now()
    scan = services.repository_scan(repository, analyse=analyse)

    assert scan.status == ScanStatus.DONE
    # the last beat came while the child slept, long after the scan's row was written
    assert (scan.heartbeat_at - started).total_seconds() >= 1


def test_it_stops_the_analysis_of_a_scan_taken_over_while_it_ran(checkout, tmp_path, settings, monkeypatch):
    settings.CODEHEALTH_SCAN_LEASE_SECONDS = 1
    repository = checkout("shop", scan_every_days=0)
    marker = tmp_path / "finished"
    beat = services.scan_beat

    def beat_then_taken_over(scan: Scan) -> None:
        # another jobs process judged this scan dead (a beat came too late) and closed it
        beat(scan)
        Scan.objects.filter(pk=scan.pk).update(status=ScanStatus.FAILED, error="the scan stopped sending x")

    monkeypatch.setattr(services, "scan_beat", beat_then_taken_over)

    def analyse(path: Path) -> list[Finding]:
        time.sleep(3)
        marker.write_text("the analysis ran to its end")
        return []

    scan = services.repository_scan(repository, analyse=analyse)

    assert scan.status == ScanStatus.FAILED and scan.error == "the scan stopped sending x"
    time.sleep(4)
    assert not marker.exists()  # the child was killed at the beat that found its scan closed
