import json

from codehealth.dependencies import (
    RegistryCache,
    audit_dependencies,
    not_run_findings,
    parse_package_json,
    version_affected,
)

ADVISORIES = [
    {
        "id": "GHSA-aaaa",
        "aliases": ["CVE-2025-0001"],
        "summary": "SQL injection",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Django"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [
                            {"introduced": "4.2"},
                            {"fixed": "4.2.8"},
                            {"introduced": "5.0"},
                            {"fixed": "5.0.1"},
                        ],
                    }
                ],
            }
        ],
    },
    {
        "id": "GHSA-bbbb",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "next"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"last_affected": "14.1.0"}]}],
            }
        ],
    },
    {
        "id": "PYSEC-cccc",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"}, "versions": ["2.30.0"]}],
    },
]


def _checkout(tmp_path):
    (tmp_path / "requirements.txt").write_text("Django==4.2.3\nrequests==2.31.0  # pinned\n-e .\n")
    (tmp_path / "package.json").write_text(
        json.dumps({"dependencies": {"next": "^14.0.4", "react": "18.2.0", "local": "file:../x"}}, indent=2)
    )
    return tmp_path


def test_osv_ranges_match_versions_the_way_the_ecosystems_order_them():
    django = ADVISORIES[0]["affected"][0]
    assert version_affected("4.2.3", django) and version_affected("5.0", django)
    assert not version_affected("4.2.8", django) and not version_affected("4.1", django)
    assert not version_affected("5.0.1", django)
    nxt = ADVISORIES[1]["affected"][0]
    assert version_affected("14.1.0", nxt) and version_affected("13.0.0-canary.1", nxt)
    assert not version_affected("14.1.1", nxt)
    assert version_affected("2.30.0", ADVISORIES[2]["affected"][0])


def test_it_reports_vulnerable_dependencies_with_their_manifest_line(tmp_path):
    result = audit_dependencies(_checkout(tmp_path), advisories=ADVISORIES)
    vulnerable = {(f.name, f.path, f.line) for f in result.findings if f.category == "vulnerable"}
    assert vulnerable == {("django", "requirements.txt", 1), ("next", "package.json", 3)}
    django = next(f for f in result.findings if f.name == "django")
    assert "CVE-2025-0001" in django.reason and "fixed in 4.2.8" in django.reason
    assert result.status["vulnerabilities"] == "ok"


def test_an_audit_that_could_not_run_says_so(tmp_path):
    result = audit_dependencies(_checkout(tmp_path))
    assert result.findings == []
    assert result.status["vulnerabilities"].startswith("not run")
    assert result.status["outdated"].startswith("not run")
    assert {f.name for f in not_run_findings(result)} == {"vulnerabilities", "outdated"}
    down = audit_dependencies(tmp_path, advisories=[], fetcher=lambda url: None)
    assert down.status["outdated"] == "not run: no registry answered"


def test_outdated_packages_come_from_the_registries_json_through_the_cache(tmp_path):
    answers = {
        "https://pypi.org/pypi/django/json": {"info": {"version": "5.2.1"}},
        "https://pypi.org/pypi/requests/json": {"info": {"version": "2.31.0"}},
        "https://registry.npmjs.org/next": {"dist-tags": {"latest": "15.0.0"}},
        "https://registry.npmjs.org/react": {"dist-tags": {"latest": "18.2.0"}},
    }
    asked = []

    def fetcher(url):
        asked.append(url)
        return answers.get(url)

    cache = RegistryCache(tmp_path / "cache.json")
    first = audit_dependencies(_checkout(tmp_path), advisories=[], fetcher=fetcher, cache=cache)
    outdated = {f.name: f.extra for f in first.findings if f.category == "outdated"}
    assert outdated == {
        "django": {"current": "4.2.3", "latest": "5.2.1", "major": True, "ecosystem": "PyPI"},
        "next": {"current": "14.0.4", "latest": "15.0.0", "major": True, "ecosystem": "npm"},
    }
    assert first.status["outdated"] == "ok"
    again = audit_dependencies(
        tmp_path, advisories=[], fetcher=fetcher, cache=RegistryCache(tmp_path / "cache.json")
    )
    assert len(asked) == 4 and len(again.findings) == 2  # the second audit was answered from the cache file


def test_package_json_skips_local_packages():
    deps = parse_package_json(json.dumps({"dependencies": {"a": "file:../a", "b": "~1.2.0"}}))
    assert [(d.name, d.version) for d in deps] == [("a", None), ("b", "1.2.0")]


def test_a_registry_silent_for_the_first_three_is_not_asked_again_and_the_rest_go_in_parallel():
    from codehealth.dependencies import Dependency, outdated

    deps = [Dependency("PyPI", f"pkg{n}", "==1.0", "1.0", "requirements.txt", n + 1) for n in range(20)]
    asked: list[str] = []

    def dead(url):
        asked.append(url)
        return None

    found, unanswered = outdated(deps, dead)
    assert found == [] and len(asked) == 3 and unanswered == [d.name for d in deps]  # all said, three asked

    def alive(url):
        asked.append(url)
        return {"info": {"version": "2.0"}} if "pkg7" not in url else None

    asked.clear()
    one_by_one = outdated(deps, alive, workers=1)
    asked.clear()
    eight = outdated(deps, alive, workers=8)
    assert len(asked) == 20 and eight == one_by_one  # same findings, in the manifest's order
    assert [f.name for f in eight[0]] == [d.name for d in deps if d.name != "pkg7"] and eight[1] == ["pkg7"]


def test_manifest_names_reach_the_registry_as_one_quoted_segment(tmp_path, settings):
    """A hostile package.json cannot steer the registry lookups to another path or query."""
    from codehealth.sources import registry_fetcher
    from tests.fakes.registries import FakeRegistries

    names = ["left-pad", "@acme/ui", "../../admin", "x?token=1", "a#b", "..", "a/../../b", "%2e%2e"]
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": dict.fromkeys(names, "1.0.0")}))
    with FakeRegistries(npm={"left-pad": "1.3.0", "@acme/ui": "2.0.0"}).serve() as fake:
        result = audit_dependencies(
            tmp_path, advisories=[], fetcher=registry_fetcher(), urls={"npm": fake.url, "pypi": fake.url}
        )
    assert sorted(fake.hits) == ["/@acme%2Fui", "/left-pad"]  # the rest are no package names: not sent
    assert {f.name for f in result.findings if f.category == "outdated"} == {"left-pad", "@acme/ui"}


def test_a_registry_url_quotes_whatever_name_it_is_given():
    from codehealth.dependencies import Dependency, registry_url

    npm = registry_url(Dependency("npm", "a?b=c#d/../e", "1", "1", "package.json", 1), npm="https://r")
    pypi = registry_url(Dependency("PyPI", "x/../y?z", "1", "1", "pyproject.toml", 1), pypi="https://p")
    assert npm == "https://r/a%3Fb%3Dc%23d%2F..%2Fe"
    assert pypi == "https://p/x%2F..%2Fy%3Fz/json"
