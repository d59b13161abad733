"""The score a maintainer would accept: weighted findings per 1,000 lines, scanned for real."""

import shutil
from pathlib import Path

import pytest

from codehealth import services
from codehealth.findings import Finding
from codehealth.score import bucket, density, score_of

pytestmark = pytest.mark.django_db

SCORED = Path(__file__).parent / "fixtures" / "scored"


def _scan(owner, local_repository, tmp_path, which: str):
    checkout = Path(shutil.copytree(SCORED / which, tmp_path / which))
    repository = local_repository(owner, checkout, name=which)
    return services.repository_scan(repository)


def test_it_scores_a_clean_repository_100_and_a_messy_one_low(alice, local_repository, tmp_path):
    clean = _scan(alice, local_repository, tmp_path, "clean")
    messy = _scan(alice, local_repository, tmp_path, "messy")
    assert clean.score == 100, clean.counts
    # two undefined names, an unused variable and two unused imports (pyflakes: errors), and
    # confident dead code, in a file far under 1,000 lines
    assert messy.counts["score_lint_error"] == 5 and messy.counts["score_stale"] >= 3
    assert messy.score == score_of(
        {"lint_error": 5, "stale": messy.counts["score_stale"]}, messy.counts["lines"]
    )
    assert messy.score < 50


def test_the_same_findings_in_more_code_score_higher():
    counts = {"lint_error": 4, "lint_style": 8}
    assert density(counts, 2_000) == 5.0  # (4 x 2 + 8 x 0.25) / 2 kLOC
    assert score_of(counts, 2_000) == 50
    assert score_of(counts, 20_000) > 90
    assert score_of(counts, 10) == score_of(counts, 1_000)  # never judged on less than 1,000 lines


def test_only_what_is_sure_and_a_problem_weighs():
    def row(kind, category, name="x", confidence=100, **extra):
        return Finding(kind, category, "a.py", 1, name, confidence, "", extra=extra)

    assert bucket(row("dependency", "vulnerable")) == "vulnerable"
    assert bucket(row("dependency", "outdated")) == "outdated"  # weighs nothing
    assert bucket(row("dependency", "not_run")) is None
    assert bucket(row("stale", "function", confidence=60)) is None  # uncertain
    assert bucket(row("stale", "function", confidence=90)) == "stale"
    assert bucket(row("lint", "ruff", "F821")) == "lint_error"
    assert bucket(row("lint", "ruff", "E501")) == "lint_style"
    assert bucket(row("lint", "eslint", "semi", severity="warning")) == "lint_style"
    assert bucket(row("lint", "tsc", "TS2322")) == "lint_error"
    assert score_of({"outdated": 40}) == 100
