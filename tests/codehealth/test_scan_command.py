import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

REPO = Path(__file__).parent / "fixtures" / "djrepo"
KEYS = {"kind", "category", "path", "line", "name", "confidence", "reason"}


def _run(*args) -> str:
    out = StringIO()
    call_command("codehealth_scan", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_prints_one_json_object_per_finding(django_assert_num_queries):
    with django_assert_num_queries(0):
        lines = _run(str(REPO), "--json").splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows and all(set(row) >= KEYS and set(row) - KEYS <= {"fixable", "extra"} for row in rows)
    stale = {(r["category"], r["name"]) for r in rows if r["kind"] == "stale"}
    assert ("template", "shop/promo_banner.html") in stale and ("route", "old-export") in stale
    lint = {(r["path"], r["name"]) for r in rows if r["kind"] == "lint"}
    assert ("shop/views.py", "F401") in lint  # ruff ran with the checkout's paths
    not_run = {r["name"] for r in rows if r["category"] == "not_run"}
    assert not_run == {"outdated", "vulnerabilities"}  # offline, and no snapshot in the checkout
    assert all(0 <= r["confidence"] <= 100 and not r["path"].startswith("/") for r in rows)


def test_the_table_and_a_kind_filter():
    text = _run(str(REPO), "--kind", "stale")
    assert text.splitlines()[0].startswith("KIND")
    assert "promo_banner.html" in text and "F401" not in text
    assert text.strip().endswith("findings")


def test_a_missing_path_is_an_error_not_a_crash(tmp_path):
    with pytest.raises(CommandError):
        _run(str(tmp_path / "nope"), "--kind", "stale", "--kind", "lint")


@pytest.mark.django_db
def test_an_unused_import_ruff_reports_is_one_finding_not_two(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "views.py").write_text("import os\n\n\ndef index():\n    return 1\n\n\nindex()\n")
    rows = [
        json.loads(line)
        for line in _run(str(tmp_path), "--json", "--kind", "stale", "--kind", "lint").splitlines()
    ]
    assert [(r["kind"], r["name"]) for r in rows if r["line"] == 1] == [("lint", "F401")]
