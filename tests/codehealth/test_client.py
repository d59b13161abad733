"""The GitHub gh against the fake GitHub API: paging, ETags, both rate limits, artifacts, errors,
and the whole pull-request sequence over the git data API."""

import pytest

from codehealth.clients import GitHubClient, GitHubError, next_link, unzip_capped
from tests.fakes.github import zip_bytes


def _runs(github, count: int) -> None:
    github.runs = [
        {
            "id": i,
            "name": "ci",
            "head_branch": "main",
            "head_sha": f"{i:040x}",
            "status": "completed",
            "conclusion": "success",
        }
        for i in range(1, count + 1)
    ]


def test_it_follows_link_pagination_to_the_last_page(github, gh):
    _runs(github, 250)
    runs = gh.workflow_runs("acme", "shop")
    assert [r.id for r in runs] == list(range(1, 251))
    pages = [p for m, p in github.requests if p.endswith("/actions/runs")]
    assert len(pages) == 3  # 100 + 100 + 50, by rel="next"


def test_it_never_follows_a_next_link_off_the_apis_origin_with_the_token(github, gh, monkeypatch):
    from codehealth import clients

    _runs(github, 250)
    monkeypatch.setattr(clients, "next_link", lambda header: "http://169.254.169.254:80/latest/meta-data/")
    with pytest.raises(GitHubError, match="refused to follow a link off the API's origin") as refused:
        gh.workflow_runs("acme", "shop")
    assert refused.value.permanent
    assert len([p for m, p in github.requests if p.endswith("/actions/runs")]) == 1


def test_it_stops_at_the_page_cap(github, gh):
    _runs(github, 250)
    assert len(gh.workflow_runs("acme", "shop", max_pages=2)) == 200


def test_next_link_reads_githubs_link_header():
    header = '<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last"'
    assert next_link(header) == "https://api.github.com/x?page=2"
    assert next_link('<https://api.github.com/x?page=1>; rel="prev"') is None


def test_it_answers_a_repeated_get_from_the_etag_cache(github, gh):
    _runs(github, 3)
    first = gh.workflow_runs("acme", "shop")
    used = github.used
    second = gh.workflow_runs("acme", "shop")
    assert second == first
    assert gh.not_modified == 1
    assert github.used == used  # a 304 costs no rate limit


def test_a_changed_resource_is_fetched_again(github, gh):
    _runs(github, 3)
    gh.workflow_runs("acme", "shop")
    _runs(github, 4)
    assert len(gh.workflow_runs("acme", "shop")) == 4
    assert gh.not_modified == 0


def test_it_waits_for_the_primary_limit_reset(github, gh):
    github.primary_limit = 1
    github.reset_at = 2_000_000_100
    gh.clock = lambda: 2_000_000_000.0
    gh.ref_get("acme", "shop", "main")  # spends the allowance

    def wait(seconds: float) -> None:
        gh.waits.append(seconds)
        github.used = 0  # the window resets while we wait

    gh.sleep = wait
    assert gh.ref_get("acme", "shop", "main")
    assert gh.waits == [101.0]  # until x-ratelimit-reset, plus a second
    assert gh.rate_limit.limit == 1


def test_a_primary_wait_beyond_the_cap_fails_retryable_with_its_reset(github, gh):
    github.primary_limit = 0
    github.reset_at = 2_000_003_600
    gh.clock = lambda: 2_000_000_000.0
    with pytest.raises(GitHubError) as info:
        gh.ref_get("acme", "shop", "main")
    assert info.value.status == 403 and not info.value.permanent
    assert info.value.retry_at == pytest.approx(2_000_003_601)
    assert gh.waits == []


def test_it_honours_retry_after_of_the_secondary_limit(github, gh):
    github.secondary_next(retry_after=7)
    assert gh.ref_get("acme", "shop", "main")
    assert gh.waits == [7.0]


def test_without_retry_after_the_secondary_limit_waits_a_minute(github, gh):
    github.secondary_next()
    assert gh.ref_get("acme", "shop", "main")
    assert gh.waits == [60.0]


def test_bad_credentials_are_permanent(github, settings):
    settings.GITHUB_API_URL = github.url
    gh = GitHubClient(token="wrong")
    with pytest.raises(GitHubError) as info:
        gh.ref_get("acme", "shop", "main")
    assert info.value.status == 401 and info.value.permanent
    assert "Bad credentials" in str(info.value)
    assert "wrong" not in str(info.value)


def test_not_found_is_permanent(gh):
    with pytest.raises(GitHubError) as info:
        gh.content("acme", "shop", "missing.py")
    assert info.value.status == 404 and info.value.permanent


def test_it_sends_the_api_version_header(github, gh):
    assert gh.session.headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_it_downloads_an_artifact_through_the_redirect_without_the_token(github, gh):
    github.add_artifact(9, 501, "ruff", {"ruff.json": b'[{"code": "F401"}]', "nested/tsc.txt": b"ok"})
    artifacts = gh.run_artifacts("acme", "shop", 9)
    assert [(a.id, a.name) for a in artifacts] == [(501, "ruff")]
    files = gh.artifact_download("acme", "shop", 501)
    assert files == {"ruff.json": b'[{"code": "F401"}]', "nested/tsc.txt": b"ok"}
    assert ("GET", "/_blobs/artifact-501.zip") in github.requests  # the blob refuses a token


def test_an_artifact_larger_than_the_cap_is_refused(github, gh):
    github.add_artifact(9, 502, "big", {"a.txt": b"x" * 5000})
    with pytest.raises(GitHubError, match="larger than"):
        gh.artifact_download("acme", "shop", 502, max_bytes=100)


def test_a_zip_bomb_stops_at_the_unzipped_cap():
    data = zip_bytes({"bomb.txt": b"0" * 1_000_000})
    assert len(data) < 10_000
    with pytest.raises(GitHubError, match="unpacks to more than"):
        unzip_capped(data, max_bytes=100_000)


def test_a_zip_with_a_climbing_path_is_refused():
    with pytest.raises(GitHubError, match="unsafe path"):
        unzip_capped(zip_bytes({"../evil.py": b"x"}), max_bytes=1000)


def test_it_reads_jobs_check_runs_and_annotations(github, gh):
    github.jobs[9] = [
        {
            "id": 1,
            "name": "lint",
            "status": "completed",
            "conclusion": "failure",
            "steps": [{"name": "ruff", "conclusion": "failure"}],
        }
    ]
    github.check_runs["abc"] = [
        {
            "id": 77,
            "name": "lint",
            "status": "completed",
            "conclusion": "failure",
            "output": {"annotations_count": 1},
        }
    ]
    github.annotations[77] = [
        {
            "path": "app/x.py",
            "start_line": 3,
            "end_line": 3,
            "annotation_level": "failure",
            "message": "F401 unused",
            "title": "ruff",
        }
    ]
    assert gh.run_jobs("acme", "shop", 9)[0].steps[0]["name"] == "ruff"
    (check,) = gh.check_runs("acme", "shop", "abc")
    assert check.annotations_count == 1
    (note,) = gh.check_run_annotations("acme", "shop", 77)
    assert (note.path, note.start_line, note.level) == ("app/x.py", 3, "failure")


def test_it_reads_contents_and_trees(github, gh):
    github.commit_files({"app/x.py": b"import os\n", "README.md": b"hi\n"}, message="add")
    assert gh.content("acme", "shop", "app/x.py") == b"import os\n"
    head = gh.ref_get("acme", "shop", "main")
    tree = gh.tree("acme", "shop", gh.commit_get("acme", "shop", head)["tree"])
    assert sorted(e.path for e in tree) == ["README.md", "app/x.py"]


def test_the_whole_pull_request_sequence(github, gh):
    github.commit_files({"app/x.py": b"import os\nimport sys\nprint(sys.argv)\n"}, message="add")
    head = gh.ref_get("acme", "shop", "main")
    base_tree = gh.commit_get("acme", "shop", head)["tree"]
    blob = gh.blob_create("acme", "shop", b"import sys\nprint(sys.argv)\n")
    tree = gh.tree_create(
        "acme",
        "shop",
        base_tree=base_tree,
        entries=[{"path": "app/x.py", "mode": "100644", "type": "blob", "sha": blob}],
    )
    commit = gh.commit_create("acme", "shop", message="Remove an unused import", tree=tree, parents=[head])
    gh.ref_create("acme", "shop", branch="codehealth/fix-1", sha=commit)
    pull = gh.pull_create("acme", "shop", head="codehealth/fix-1", base="main", title="Fix", body="F401")
    assert pull.number == 1 and pull.state == "open" and pull.head == "codehealth/fix-1"
    assert github.file_at("codehealth/fix-1", "app/x.py") == b"import sys\nprint(sys.argv)\n"
    assert github.file_at("main", "app/x.py").startswith(b"import os")  # main untouched
    assert [p.number for p in gh.pulls_list("acme", "shop")] == [1]
    # The branch exists now: GitHub's 422 in its error JSON, permanent.
    with pytest.raises(GitHubError) as info:
        gh.ref_create("acme", "shop", branch="codehealth/fix-1", sha=commit)
    assert info.value.status == 422 and info.value.permanent
    with pytest.raises(GitHubError) as info:
        gh.pull_create("acme", "shop", head="codehealth/fix-1", base="main", title="Fix", body="")
    assert "already exists" in info.value.errors[0]["message"]
    gh.ref_update("acme", "shop", branch="codehealth/fix-1", sha=head, force=True)
    assert github.refs["heads/codehealth/fix-1"] == head


def test_a_server_error_is_retried_then_reported_transient(github, settings):
    settings.GITHUB_API_URL = "http://127.0.0.1:1"  # nothing listens
    gh = GitHubClient(token="t", max_retries=2)
    gh.sleep = lambda s: None
    with pytest.raises(GitHubError) as info:
        gh.ref_get("acme", "shop", "main")
    assert not info.value.permanent and info.value.status is None
