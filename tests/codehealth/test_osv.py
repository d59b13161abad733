"""The OSV snapshot refreshed from OSV's API for the packages a checkout declares, against a fake of
the API, and used offline as the last refresh left it."""

import json

import pytest

from codehealth import osv, services
from codehealth.dependencies import Dependency, audit_dependencies, load_advisories
from codehealth.models import CodeFinding
from juggernaut.http import http_session
from tests.fakes.osv import FakeOSV


def record(
    vid: str, name: str, versions: list[str], modified: str = "2025-01-01T00:00:00Z", ecosystem: str = "PyPI"
) -> dict:
    return {
        "id": vid,
        "modified": modified,
        "summary": f"{vid} in {name}",
        "aliases": [f"CVE-2025-{vid[-4:]}"],
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "versions": versions,
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.0"}]}],
            }
        ],
    }


def dep(name: str, version: str, ecosystem: str = "PyPI") -> Dependency:
    return Dependency(ecosystem, name, f"=={version}", version, "requirements.txt", 1)


@pytest.fixture
def session():
    return http_session(max_retries=0, timeout=5)


def test_a_refresh_fetches_what_affects_the_declared_packages_and_the_audit_uses_it(tmp_path, session):
    snapshot = tmp_path / "osv.json"
    fake = FakeOSV(
        [
            record("GHSA-0001", "Django", ["4.2.0"]),
            record("GHSA-0002", "requests", ["2.0.0"]),
            record("GHSA-0003", "left-pad", ["1.0.0"], ecosystem="npm"),
        ]
    )
    (tmp_path / "requirements.txt").write_text("django==4.2.0\nrequests==2.31.0\n")
    deps = [dep("django", "4.2.0"), dep("requests", "2.31.0")]
    with fake.serve():
        first = osv.snapshot_refresh(snapshot, deps, base_url=fake.url, session=session)
        assert (first.status, first.fetched, first.records) == ("refreshed", 1, 1)
        assert fake.hits == ["POST /v1/querybatch", "GET /v1/vulns/GHSA-0001"]
        fake.hits.clear()
        again = osv.snapshot_refresh(snapshot, deps, base_url=fake.url, session=session)
        assert (again.status, again.fetched) == ("current", 0)
        assert fake.hits == ["POST /v1/querybatch"]  # nothing newer: no record fetched twice
    found = audit_dependencies(tmp_path, advisories=snapshot)
    assert found.status["vulnerabilities"] == "ok"
    assert [(f.name, f.extra["advisory"]) for f in found.findings] == [("django", "GHSA-0001")]


def test_a_record_modified_since_is_fetched_again_and_other_packages_records_are_kept(tmp_path, session):
    snapshot = tmp_path / "osv.json"
    old = record("GHSA-0001", "Django", ["4.2.0"])
    other = record("GHSA-0009", "flask", ["1.0"])
    snapshot.write_text(json.dumps([old, other]))
    newer = {
        **record("GHSA-0001", "Django", ["4.2.0"], modified="2025-06-01T00:00:00Z"),
        "summary": "updated",
    }
    with FakeOSV([newer]).serve() as fake:
        result = osv.snapshot_refresh(snapshot, [dep("Django", "4.2.0")], base_url=fake.url, session=session)
    assert (result.status, result.fetched, result.records) == ("refreshed", 1, 2)
    by_id = {r["id"]: r for r in load_advisories(snapshot)}
    assert by_id["GHSA-0001"]["summary"] == "updated" and "GHSA-0009" in by_id


def test_it_follows_each_querys_page_tokens_and_splits_batches_at_1000(tmp_path, session):
    records = [record(f"GHSA-{n:04d}", "django", ["4.2.0"]) for n in range(5)]
    many = [dep(f"pkg{n}", "1.0") for n in range(1200)] + [dep("django", "4.2.0")]
    with FakeOSV(records, page_size=2).serve() as fake:
        result = osv.snapshot_refresh(tmp_path / "osv.json", many, base_url=fake.url, session=session)
        posts = [h for h in fake.hits if h.startswith("POST")]
    assert (result.status, result.fetched) == ("refreshed", 5)
    assert len(posts) == 4  # 1000 + 201 queries, then django's second and third page


def test_osv_down_leaves_the_snapshot_as_it_was_and_the_audit_reads_it(tmp_path, session):
    snapshot = tmp_path / "osv.json"
    snapshot.write_text(json.dumps([record("GHSA-0001", "django", ["4.2.0"])]))
    before = snapshot.read_bytes()
    fake = FakeOSV([])
    fake.down = True
    with fake.serve():
        result = osv.snapshot_refresh(snapshot, [dep("django", "4.2.0")], base_url=fake.url, session=session)
    assert result.status == "offline: OSV answered HTTP 503" and result.records == 1
    assert snapshot.read_bytes() == before
    (tmp_path / "requirements.txt").write_text("django==4.2.0\n")
    assert [f.name for f in audit_dependencies(tmp_path, advisories=snapshot).findings] == ["django"]


def test_an_unreachable_osv_is_offline_not_an_error(tmp_path, session):
    result = osv.snapshot_refresh(
        tmp_path / "osv.json", [dep("django", "4.2.0")], base_url="http://127.0.0.1:9", session=session
    )
    assert (
        result.status.startswith("offline: OSV could not be asked") and not (tmp_path / "osv.json").exists()
    )


@pytest.mark.django_db
def test_a_scan_refreshes_the_snapshot_first_and_reports_the_vulnerability(
    alice, tmp_path, settings, local_repository
):
    checkout = tmp_path / "repo"
    checkout.mkdir()
    (checkout / "requirements.txt").write_text("django==4.2.0\n")
    settings.CODEHEALTH_REGISTRY_LOOKUPS = True
    settings.CODEHEALTH_OSV_SNAPSHOT = str(tmp_path / "var" / "osv.json")
    settings.CODEHEALTH_PYPI_URL = settings.CODEHEALTH_NPM_URL = "http://127.0.0.1:9"
    repository = local_repository(alice, checkout, name="shop")
    with FakeOSV([record("GHSA-0001", "django", ["4.2.0"])]).serve() as fake:
        settings.CODEHEALTH_OSV_URL = fake.url
        scan = services.repository_scan(repository)
    assert scan.counts["osv"] == "refreshed (1 fetched, 1 in the snapshot)"
    vulnerable = CodeFinding.objects.get(kind="dependency", category="vulnerable")
    assert vulnerable.name == "django" and "GHSA-0001" in vulnerable.reason
    again = services.repository_scan(repository)  # OSV gone now: the snapshot still answers
    assert again.counts["osv"].startswith("offline:") and vulnerable.fixed_scan_id is None
    assert CodeFinding.objects.open().filter(category="vulnerable").count() == 1
