from typing import Literal

from ninja import Field, Schema

from juggernaut.schemas import Choice
from selfheal.models import Execution


class FixOut(Schema):
    kind: Literal["safe", "manual"]
    name: str
    description: str


class FindingOut(Schema):
    check: str
    severity: Literal["critical", "warning", "info"]
    title: str
    evidence: dict
    action: FixOut | None


class CheckOut(Schema):
    name: str
    status: Literal["ok", "finding", "timeout", "error"]
    duration_ms: int


class DiagnosisOut(Schema):
    id: int
    status: Choice(Execution.Status.values)  # type: ignore[valid-type]
    duration_ms: int
    findings: list[FindingOut] = Field(..., alias="report.findings")
    checks: list[CheckOut] = Field(..., alias="report.checks")


class StepOut(Schema):
    """A repair step, or one check of a diagnosis (which has no output and touches nothing)."""

    name: str
    # a check's (ok, finding, timeout, error) or a repair step's (ok, not_fixed, dry_run, skipped, failed,
    # open: the circuit breaker)
    status: Choice(["ok", "finding", "timeout", "error", "not_fixed", "dry_run", "skipped", "failed", "open"])  # type: ignore[valid-type]
    output: str = ""
    touched: int = 0
    duration_ms: int | None = None


class VerificationOut(Schema):
    fixed: list[FindingOut] = []
    awaiting: list[FindingOut] = Field(
        [],
        description="Gone only because the work was handed on (a requeued "
        "task has yet to run); ``outcome`` says whether it helped.",
    )
    remaining: list[FindingOut] = []
    new: list[FindingOut] = []


class OutcomeOut(Schema):
    """What a repair achieved, judged by what it aimed at (never by its steps merely having run)."""

    state: Literal["running", "dry_run", "fixed", "in_progress", "did_not_help", "nothing"]
    words: str
    reason: str = ""


class ExecutionOut(Schema):
    id: int
    kind: Choice(Execution.Kind.values)  # type: ignore[valid-type]
    status: Literal["running", "succeeded", "partial", "failed"]
    dry_run: bool
    steps: list[StepOut]
    verification: VerificationOut
    outcome: OutcomeOut

    @staticmethod
    def resolve_outcome(obj) -> dict:
        from selfheal.services import execution_outcome

        return execution_outcome(obj)


class RepairIn(Schema):
    actions: list[str] | None = Field(None, max_length=20)
    dry_run: bool = False
