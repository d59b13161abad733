"""The one shape every analyser returns: a finding about a file of a checkout.

Analysers (lint, stale code, contracts, dependencies) are pure functions over a directory and return
these; the services turn them into rows, the ``codehealth_scan`` command into JSON lines.
"""

from dataclasses import asdict, dataclass, field

KINDS = ("stale", "lint", "contract", "dependency")
# A frontend type that lacks an optional field its API returns: drift, not a mismatch (nothing breaks),
# so it is no contract violation and costs no score; its fix (types only) is mechanical.
TYPE_DRIFT = "type_missing_optional_field"
# A file an analyser could not read (a note, not a problem of the code: it counts in no score)
SKIPPED = "skipped"
# A finding this sure is *confident*: for stale code, its name appears nowhere at all and nothing may
# reach it without naming it; only these count in the score and only these are ever fixed. Below it
# a finding is *uncertain*: shown apart, for a human to judge.
CONFIDENT = 90
UNCERTAIN = 60  # what the stale analysis gives an item something may keep alive
STALE_CATEGORIES = (
    "import",
    "variable",
    "function",
    "class",
    "method",
    "route",
    "view",
    "template",
    "file",
    "tool",
)


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    category: str  # for stale: one of STALE_CATEGORIES; for lint: the tool (ruff, eslint, tsc); ...
    path: str  # relative to the analysed checkout, forward slashes
    line: int | None
    name: str  # the symbol, rule code, endpoint or package the finding is about
    confidence: int  # 0–100: how sure the analyser is that this is real
    reason: str  # a human sentence: why it was flagged
    fixable: bool = False  # a mechanical, behaviour-preserving fix exists (auto-PR candidate)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def as_json(self) -> dict:
        """The ``codehealth_scan --json`` line (``extra`` and ``fixable`` only when set)."""
        data = asdict(self)
        if not data["extra"]:
            data.pop("extra")
        if not data["fixable"]:
            data.pop("fixable")
        return data
