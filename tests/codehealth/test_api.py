"""The code health API as a client uses it: scopes, ownership, bad input, one error shape."""

import json

import pytest
from django.utils import timezone

from codehealth import services
from codehealth.findings import Finding
from codehealth.models import CodeFinding, Repository, Scan
from juggernaut.engine.models import Task

pytestmark = pytest.mark.django_db
BASE = "/api/codehealth"


@pytest.fixture
def dave(django_user_model):
    """Another operator: staff, but none of alice's repositories are his."""
    return django_user_model.objects.create_user("dave", "dave@example.com", "pw-dave-123456", is_staff=True)


@pytest.fixture
def repository(alice, tmp_path, local_repository):
    repository = local_repository(alice, tmp_path, name="shop")
    scan = Scan.objects.create(repository=repository, started_at=timezone.now())
    services.scan_record(
        scan, [Finding("lint", "ruff", "app/x.py", 1, "F401", 100, "`os` imported but unused")]
    )
    return repository


def post(client, url, body=None, **headers):
    return client.post(url, json.dumps(body or {}), content_type="application/json", **headers)


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code


def test_it_registers_and_lists_repositories(client, bearer):
    headers = bearer("read", "write")
    response = post(client, f"{BASE}/repositories", {"github": "acme/site", "name": "site"}, **headers)
    assert response.status_code == 201
    assert response.json()["github_name"] == "site"
    listing = client.get(f"{BASE}/repositories", **headers).json()
    assert [r["name"] for r in listing] == ["site"]
    schema = "https://user:pw@api.example.com/api/openapi.json?key=s3cret"
    created = post(
        client,
        f"{BASE}/repositories",
        {"github": "acme/api", "name": "api", "schema_url": schema},
        **headers,
    ).json()
    assert (
        created["schema_url"] == "https://api.example.com/api/openapi.json"
    )  # never the key or the password
    assert Repository.objects.get(name="api").schema_url == schema
    assert_error(
        post(
            client,
            f"{BASE}/repositories",
            {"github": "acme/web", "schema_url": "file:///etc"},
            **headers,
        ),
        422,
        "bad_schema_url",
    )


def test_bad_input_is_a_422_in_the_one_shape(client, bearer):
    headers = bearer("write")
    assert_error(post(client, f"{BASE}/repositories", {"github": "no way"}, **headers), 422, "bad_github")
    assert_error(
        post(client, f"{BASE}/repositories", {"github": "a/b", "scan_every_days": -1}, **headers),
        422,
        "validation_error",
    )
    response = client.post(f"{BASE}/repositories", "{not json", content_type="application/json", **headers)
    assert 400 <= response.status_code < 500 and "error" in response.json()
    assert Repository.objects.count() == 0


def test_a_read_token_cannot_write(client, bearer, repository):
    headers = bearer("read")
    assert_error(post(client, f"{BASE}/repositories/{repository.pk}/scans", **headers), 403, "forbidden")
    finding = CodeFinding.objects.get()
    assert_error(post(client, f"{BASE}/findings/{finding.pk}/task", **headers), 403, "forbidden")
    assert Task.objects.count() == 0


def test_no_token_is_a_401(client, repository):
    assert client.get(f"{BASE}/repositories").status_code == 401


def test_another_operators_repository_is_not_found(client, make_token, dave, repository):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {make_token('read', 'write', user=dave)}"}
    assert client.get(f"{BASE}/repositories", **headers).json() == []
    assert_error(client.get(f"{BASE}/repositories/{repository.pk}", **headers), 404, "not_found")
    assert_error(client.get(f"{BASE}/repositories/{repository.pk}/findings", **headers), 404, "not_found")
    finding = CodeFinding.objects.get()
    assert_error(post(client, f"{BASE}/findings/{finding.pk}/task", **headers), 404, "not_found")
    assert Task.objects.count() == 0


def test_a_scan_request_is_queued_for_the_jobs_process(
    client, bearer, repository, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(services, "async_task", lambda *args, **kw: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, f"{BASE}/repositories/{repository.pk}/scans", **bearer("write"))
    assert response.status_code == 202 and response.json() == {"repository_id": repository.pk, "queued": True}
    assert queued == [("codehealth.tasks.repository_scan", repository.pk)]


def test_findings_scans_and_reports_are_listed(client, bearer, repository):
    headers = bearer("read")
    (finding,) = client.get(f"{BASE}/repositories/{repository.pk}/findings", **headers).json()
    assert (finding["name"], finding["is_open"], finding["task_id"]) == ("F401", True, None)
    assert client.get(f"{BASE}/repositories/{repository.pk}/findings?state=fixed", **headers).json() == []
    assert_error(
        client.get(f"{BASE}/repositories/{repository.pk}/findings?kind=nope", **headers),
        422,
        "validation_error",
    )
    (scan,) = client.get(f"{BASE}/repositories/{repository.pk}/scans", **headers).json()
    assert scan["status"] == "done" and scan["score"] < 100
    services.report_build(repository)
    (report,) = client.get(f"{BASE}/repositories/{repository.pk}/reports", **headers).json()
    assert report["score"] == scan["score"] and report["dependencies_audited"] is True


def test_create_task_is_201_then_200_for_the_same_finding(client, bearer, repository):
    headers = bearer("write")
    finding = CodeFinding.objects.get()
    first = post(client, f"{BASE}/findings/{finding.pk}/task", **headers)
    again = post(client, f"{BASE}/findings/{finding.pk}/task", **headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["task_id"] == again.json()["task_id"]
    task = Task.objects.get()
    assert task.source == "codehealth" and task.dedupe_key == finding.dedupe_key


def test_unknown_and_huge_ids_are_4xx(client, bearer):
    headers = bearer("read", "write")
    assert_error(client.get(f"{BASE}/repositories/999", **headers), 404, "not_found")
    response = client.get(f"{BASE}/repositories/99999999999999999999999", **headers)
    assert 400 <= response.status_code < 500


def test_an_auto_pr_for_a_local_repository_is_refused(client, bearer, repository):
    assert_error(
        post(client, f"{BASE}/repositories/{repository.pk}/pull-requests", **bearer("write")),
        422,
        "not_on_github",
    )


def test_findings_are_dismissed_and_reopened_through_the_api(
    client, bearer, repository, django_user_model, make_token
):
    headers = bearer("read", "write")
    finding = CodeFinding.objects.get()
    response = post(client, f"{BASE}/findings/{finding.pk}/dismiss", {"reason": "intended"}, **headers)
    assert (
        response.status_code == 200
        and response.json()["dismissed_by"]
        and response.json()["is_open"] is False
    )
    listing = client.get(f"{BASE}/repositories/{repository.pk}/findings?state=dismissed", **headers).json()
    assert [f["id"] for f in listing] == [finding.pk] and listing[0]["dismiss_reason"] == "intended"
    assert client.get(f"{BASE}/repositories/{repository.pk}/findings", **headers).json() == []
    assert_error(
        post(client, f"{BASE}/findings/{finding.pk}/dismiss", {}, **headers), 409, "already_dismissed"
    )
    assert_error(post(client, f"{BASE}/findings/{finding.pk}/task", **headers), 409, "dismissed")
    assert_error(
        post(client, f"{BASE}/findings/{finding.pk}/dismiss", {"reason": "x" * 301}, **headers),
        422,
        "validation_error",
    )
    dave = django_user_model.objects.create_user("dave", "d@example.com", "pw-dave-123456", is_staff=True)
    strangers = {"HTTP_AUTHORIZATION": f"Bearer {make_token('write', user=dave)}"}
    assert_error(post(client, f"{BASE}/findings/{finding.pk}/reopen", **strangers), 404, "not_found")
    assert post(client, f"{BASE}/findings/{finding.pk}/reopen", **headers).json()["is_open"] is True
    assert_error(post(client, f"{BASE}/findings/{finding.pk}/reopen", **headers), 409, "already_open")
