"""Static-analysis results a repository's own CI left behind, as findings.

The CI's results come first (they ran with the repository's own configuration): the artifacts of the
newest completed workflow run of the scanned commit (else of the branch) are unpacked and each file read
as ``ruff --output-format json``, ``eslint -f json`` or ``tsc`` output. Only when no artifact holds any of
those do check-run annotations stand in, at most ten per check run (GitHub keeps no more per step).
A CI that cannot be read is a note on the scan, never a failed scan: the local analysis still counts.
"""

from dataclasses import dataclass, field

from codehealth import lint
from codehealth.clients import GitHubClient, GitHubError
from codehealth.findings import Finding
from codehealth.untrusted import json_loads

MAX_ARTIFACTS = 10


@dataclass
class CiResult:
    findings: list[Finding] = field(default_factory=list)
    source: str = "none"  # "artifacts", "annotations" or "none"
    note: str = ""  # what was read, or why nothing was
    refused: int = 0  # items refused: a path out of the repository


def _parse_file(name: str, data: bytes, refused: list) -> list[Finding] | None:
    """The findings of one artifact file, or None when it is none of the formats we read (or JSON that
    ``codehealth.untrusted`` refuses: non-finite or absurd numbers, deep nesting). Paths that leave the
    repository are refused, and a CI's fix edits are never kept: an auto-PR applies only edits the
    HQ's own ruff computed."""
    text = data.decode("utf-8", errors="replace")
    if name.endswith(".json"):
        try:
            items = json_loads(text)
        except ValueError:
            return None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return None
        if not items:
            return []  # a clean run of either tool
        if "filePath" in items[0] and "messages" in items[0]:
            return lint.parse_eslint_json(text, refused=refused)
        if "code" in items[0] and "filename" in items[0]:
            return lint.parse_ruff_json(text, with_edits=False, refused=refused)
        return None
    if name.endswith((".txt", ".log")) and "tsc" in name.lower():
        return lint.parse_tsc(text, refused=refused)
    return None


def _from_artifacts(
    client: GitHubClient, owner: str, repo: str, run_id: int, refused: list
) -> tuple[list[Finding], list[str]]:
    findings: list[Finding] = []
    read: list[str] = []
    artifacts = [a for a in client.run_artifacts(owner, repo, run_id) if not a.expired][:MAX_ARTIFACTS]
    for artifact in artifacts:
        try:
            files = client.artifact_download(owner, repo, artifact.id)
        except GitHubError:
            continue
        for name, data in sorted(files.items()):
            parsed = _parse_file(name, data, refused)
            if parsed is not None:
                findings += parsed
                read.append(f"{artifact.name}/{name}")
    return findings, read


def _from_annotations(client: GitHubClient, owner: str, repo: str, ref: str, refused: list) -> list[Finding]:
    findings: list[Finding] = []
    for check in client.check_runs(owner, repo, ref):
        if not check.annotations_count:
            continue
        notes = client.check_run_annotations(owner, repo, check.id)
        findings += lint.parse_annotations(
            [
                {
                    "path": a.path,
                    "start_line": a.start_line,
                    "annotation_level": a.level,
                    "message": a.message,
                    "title": a.title,
                }
                for a in notes
            ],
            tool=check.name or "ci",
            refused=refused,
        )
    return findings


def ci_findings(
    owner: str, repo: str, *, sha: str, branch: str, client: GitHubClient | None = None
) -> CiResult:
    """The lint findings of the CI run of ``sha`` (or the branch's newest completed run)."""
    client = client or GitHubClient()
    refused: list[str] = []
    try:
        runs = client.workflow_runs(owner, repo, branch=branch, status="completed", max_pages=1)
        run = next((r for r in runs if r.head_sha == sha), runs[0] if runs else None)
        if run is not None:
            findings, read = _from_artifacts(client, owner, repo, run.id, refused)
            if read:
                note = f"CI run {run.id}: {', '.join(read[:5])}"
                return CiResult(findings, "artifacts", note, refused=len(refused))
        findings = _from_annotations(client, owner, repo, sha or branch, refused)
    except GitHubError as exc:
        return CiResult(note=f"CI results not read: {exc}"[:300])
    if findings:
        return CiResult(
            findings, "annotations", "CI annotations (no readable artifact)", refused=len(refused)
        )
    return CiResult(note="no CI artifact or annotation to read")
