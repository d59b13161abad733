"""In/Out schemas of the code health API."""

from datetime import date, datetime
from typing import Literal

from ninja import Field, Schema

from codehealth.findings import KINDS
from codehealth.models import ChecksState, PullStatus, ScanStatus
from juggernaut.schemas import Choice


class RepositoryIn(Schema):
    github: str = Field("", max_length=200, description="owner/name on GitHub")
    local_path: str = Field(
        "", max_length=1000, description="an absolute path to a checkout on the HQ's machine"
    )
    name: str = Field("", max_length=200)
    default_branch: str = Field(
        "", max_length=200, description="main when empty; a local checkout's own branch"
    )
    frontend_root: str = Field("", max_length=300)
    backend_root: str = Field("", max_length=300)
    scan_every_days: int = Field(7, ge=0, le=365)
    schema_url: str = Field(
        "", max_length=500, description="a running instance's OpenAPI document, fetched at each scan"
    )


class RepositoryOut(Schema):
    id: int
    name: str
    github_owner: str
    github_name: str
    local_path: str
    default_branch: str
    frontend_root: str
    backend_root: str
    scan_every_days: int
    schema_url: str = Field(description="without its query or credentials, which may hold a key")
    created_at: datetime
    last_scanned_at: datetime | None
    scan_requested_at: datetime | None

    @staticmethod
    def resolve_schema_url(obj) -> str:
        return obj.schema_url_shown


class ScanOut(Schema):
    id: int
    repository_id: int
    status: Choice(ScanStatus.values)  # type: ignore[valid-type]
    commit_sha: str
    started_at: datetime
    finished_at: datetime | None
    score: int | None
    findings_count: int
    new_count: int
    fixed_count: int
    counts: dict
    error: str


class ScanQueuedOut(Schema):
    repository_id: int
    queued: bool


class FindingsQuery(Schema):
    kind: Literal[KINDS] | None = None  # type: ignore[valid-type]
    state: Literal["open", "dismissed", "fixed", "all"] = "open"
    limit: int = Field(200, ge=1, le=1000)


class CodeFindingOut(Schema):
    id: int
    repository_id: int
    kind: Choice(KINDS)  # type: ignore[valid-type]
    category: str
    path: str
    line: int | None
    name: str
    confidence: int
    reason: str
    fixable: bool
    is_open: bool
    task_id: int | None
    dismissed_at: datetime | None
    dismissed_by: str
    dismiss_reason: str


class DismissIn(Schema):
    reason: str = Field("", max_length=300, description="why it is not a problem (a false alarm, intended)")


class FindingTaskOut(Schema):
    task_id: int
    created: bool


class ReportOut(Schema):
    id: int
    repository_id: int
    week_start: date
    score: int | None
    previous_score: int | None
    trend: int | None
    new_count: int
    fixed_count: int
    stale_count: int
    contract_count: int
    vulnerable_count: int
    outdated_count: int
    dependencies_audited: bool
    prs_opened: int
    prs_merged: int
    data: dict


class PullRequestOut(Schema):
    id: int
    repository_id: int
    number: int
    url: str
    branch: str
    title: str
    status: Choice(PullStatus.values)  # type: ignore[valid-type]
    checks: Choice(
        ChecksState.values, "pending, passing or failing: the repository's own checks on its commit"
    )  # type: ignore[valid-type]
    checks_detail: str
    changes: list
    dropped: list  # fixes left out because they could not be proven safe, each with its reason
    created_at: datetime
