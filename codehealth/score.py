"""The 0-100 score of a repository: weighted open findings per 1,000 lines of code.

A finding weighs by what it costs the people who run the code (see docs/codehealth.md, with a worked
example): a known vulnerability or a broken contract ships a bug; a lint rule that finds errors
(pyflakes, syntax, tsc) very likely is one; a confident stale item is clutter; style is a nit. What
is not sure or not a problem weighs nothing: uncertain stale items, outdated dependencies with no
known vulnerability, audits that did not run, files skipped, type drift. The weighted sum is divided
by the size of the code (never less than 1,000 lines, so a tiny repository is not judged by one
nit), and the density maps to a score: ``100 * HALF / (HALF + density)``: 100 when clean, 50 at
``HALF`` weighted points per 1,000 lines.
"""

from django.conf import settings

from codehealth.findings import SKIPPED, TYPE_DRIFT, Finding

WEIGHTS = {
    "vulnerable": 10.0,  # a dependency with a known vulnerability
    "contract": 5.0,  # the frontend and its API disagree: a break users meet
    "lint_error": 2.0,  # a rule that finds errors: undefined names, syntax, type errors
    "stale": 0.5,  # confident dead code
    "lint_style": 0.25,  # everything else a linter says: the repository chose it, it is still a nit
    "outdated": 0.0,  # behind, with no known vulnerability: worth knowing, not a defect
}
HALF = 5.0  # weighted points per 1,000 lines at which the score is 50
MIN_LINES = 1000
# Rules whose findings are errors rather than style: pyflakes and syntax errors (ruff), ruff's
# pylint errors and bugbear; every tsc diagnostic is a type error.
ERROR_RULES = ("F", "E9", "PLE", "B")


def bucket(row: Finding) -> str | None:
    """The weight class of a finding (a ``Finding`` or a ``CodeFinding`` row); None: weighs nothing."""
    if row.category in ("not_run", SKIPPED):
        return None  # a note about the scan, not a problem of the code
    if row.kind == "dependency":
        return "vulnerable" if row.category.startswith("vuln") else "outdated"
    if row.kind == "stale":
        return "stale" if row.confidence >= settings.CODEHEALTH_STALE_MIN_CONFIDENCE else None
    if row.kind == "contract":
        return None if row.category == TYPE_DRIFT else "contract"
    if row.kind == "lint":
        if row.category == "tsc" or (row.category == "eslint" and row.extra.get("severity") == "error"):
            return "lint_error"
        if (
            row.category in ("ruff", "ci") and row.name.startswith(ERROR_RULES)
        ) or row.name == "syntax-error":
            return "lint_error"
        return "lint_style"
    return None


def density(counts: dict, lines: int | None) -> float:
    """Weighted open findings per 1,000 lines (``counts``: findings per bucket)."""
    weighted = sum(WEIGHTS.get(key, 0.0) * count for key, count in counts.items())
    return weighted / (max(lines or 0, MIN_LINES) / 1000)


def score_of(counts: dict, lines: int | None = None) -> int:
    """The 0-100 score of open-finding ``counts`` per bucket in ``lines`` of code."""
    return round(100 * HALF / (HALF + density(counts, lines)))
