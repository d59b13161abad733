"""Auto-PRs: mechanical, behaviour-preserving fixes committed through GitHub's git data API.

Only open findings that are ``fixable``, of a rule in ``MECHANICAL_RULES``, and carry their edits
(ruff's JSON ``fix.edits`` shape, in ``extra["edits"]``: ``content``, ``location`` and
``end_location`` with 1-based ``row``/``column``) are taken. Unused-import removals are refused in
``__init__.py`` (re-exports) and for modules imported for their side effects. The edits are applied
to the files as GitHub holds them at the scanned commit and proven safe (``codehealth.fixproof``: a fix
that cannot be proven is left out, and the pull request says why); then blobs -> tree -> commit -> branch ->
pull request, whose body lists every change and its rule. At most ``CODEHEALTH_MAX_OPEN_PRS`` auto-PRs
are open per repository at once (their state is read back from GitHub first).
"""

import hashlib
import re
from collections import defaultdict
from posixpath import basename

from django.conf import settings
from django.db import transaction

from codehealth.clients import GitHubClient, GitHubError
from codehealth.errors import CodehealthError
from codehealth.findings import TYPE_DRIFT
from codehealth.fixproof import dropped_entry, file_prove
from codehealth.lint import FORMAT_RULE
from codehealth.models import AutoPullRequest, ChecksState, CodeFinding, PullStatus, Repository, ScanStatus
from codehealth.untrusted import confined_path
from juggernaut.events import publish

TOPIC = "codehealth"
MECHANICAL_RULES = {
    "F401": "remove an unused import",
    "I001": "sort imports",
    "W291": "strip trailing whitespace",
    "W293": "strip whitespace on a blank line",
    "W292": "add the missing newline at the end of the file",
    "UP009": "drop a redundant UTF-8 coding declaration",
    FORMAT_RULE: "reformat with the repository's own ruff format settings",
    TYPE_DRIFT: "add an optional field the API returns to its frontend type",
}
UNUSED_IMPORT_RULES = {"F401"}
# Imports that exist for what importing them does (receivers connect, admin and checks register).
SIDE_EFFECT_MODULES = frozenset(
    {"signals", "receivers", "handlers", "checks", "admin", "apps", "tasks", "tools"}
)
_QUOTED = re.compile(r"`([A-Za-z_][\w.]*)`")


def imported_module(finding: CodeFinding) -> str:
    """The module an unused-import finding names: ``extra["module"]``, else ruff's quoted name."""
    match = _QUOTED.search(finding.reason)
    return str(finding.extra.get("module") or (match.group(1) if match else finding.name))


def _rule(finding: CodeFinding) -> str:
    if finding.kind == "contract":
        return finding.category if finding.category == TYPE_DRIFT else ""
    return finding.name if finding.kind == "lint" else ("F401" if finding.category == "import" else "")


def fix_eligible(finding: CodeFinding) -> bool:
    """Whether an auto-PR may carry this finding's fix (see the module docstring)."""
    rule = _rule(finding)
    if not (finding.is_open and finding.fixable and rule in MECHANICAL_RULES and finding.extra.get("edits")):
        return False
    if not finding.path or confined_path(finding.path) != finding.path:
        return False  # a path that leaves the repository (a row kept from an older scan) is never fetched
    if rule in UNUSED_IMPORT_RULES:
        if basename(finding.path) == "__init__.py":
            return False
        if set(imported_module(finding).split(".")) & SIDE_EFFECT_MODULES:
            return False
    return True


def _offset(lines: list[str], row: int, column: int) -> int:
    if row < 1 or row > len(lines) + 1 or column < 1:
        raise ValueError("an edit outside the file")
    return sum(len(line) for line in lines[: row - 1]) + column - 1


def edits_apply(text: str, edits: list[dict]) -> str:
    """``text`` with ruff-style edits applied; overlapping or out-of-range edits raise ``ValueError``."""
    lines = text.splitlines(keepends=True)
    spans = []
    for edit in edits:
        start = _offset(lines, int(edit["location"]["row"]), int(edit["location"]["column"]))
        end = _offset(lines, int(edit["end_location"]["row"]), int(edit["end_location"]["column"]))
        if end < start or end > len(text):
            raise ValueError("an edit that ends before it starts")
        spans.append((start, end, str(edit.get("content") or "")))
    spans.sort()
    for (_, end, _), (start, _, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise ValueError("overlapping edits")
    for start, end, content in reversed(spans):
        text = text[:start] + content + text[end:]
    return text


FAILED_CONCLUSIONS = {"failure", "timed_out", "cancelled", "action_required", "startup_failure", "stale"}


def checks_state(runs) -> tuple[str, str]:
    """The repository's own checks on a commit, in one word (and the failing ones' names): a check
    that failed makes it failing at once; passing needs every check finished well."""
    failing = sorted({r.name for r in runs if r.status == "completed" and r.conclusion in FAILED_CONCLUSIONS})
    if failing:
        return ChecksState.FAILING, ", ".join(failing)[:300]
    if runs and all(r.status == "completed" for r in runs):
        return ChecksState.PASSING, ""
    return ChecksState.PENDING, ""


def pull_requests_sync(repository: Repository, client: GitHubClient) -> None:
    """Read our open auto-PRs back from GitHub: merged or closed by a human, and what the repository's
    own checks say of each one's commit."""
    mine = {p.number: p for p in repository.pull_requests.filter(status=PullStatus.OPEN)}
    if not mine:
        return
    owner, name = repository.github_owner, repository.github_name
    for pull in client.pulls_list(owner, name, state="all"):
        row = mine.get(pull.number)
        if row and pull.state != "open":
            row.status = PullStatus.MERGED if pull.merged else PullStatus.CLOSED
            row.save(update_fields=["status"])
    for row in mine.values():
        if row.status == PullStatus.OPEN:
            state, detail = checks_state(client.check_runs(owner, name, row.commit_sha))
            if (state, detail) != (row.checks, row.checks_detail):
                row.checks, row.checks_detail = state, detail
                row.save(update_fields=["checks", "checks_detail"])
                publish(
                    TOPIC,
                    "pull_request_checked",
                    {"repository_id": repository.pk, "number": row.number, "checks": state},
                )


def pull_requests_refresh() -> int:
    """Sync every repository's open auto-PRs (the hourly code-health job); a GitHub that does not
    answer is tried again next hour. Returns how many repositories were read."""
    repositories = Repository.objects.filter(pull_requests__status=PullStatus.OPEN).distinct()
    done = 0
    client = GitHubClient()
    for repository in repositories:
        try:
            pull_requests_sync(repository, client)
            done += 1
        except GitHubError:
            continue
    return done


def _body(changes: list[dict], dropped: list[dict] | None = None) -> str:
    lines = [
        "Mechanical fixes found by the HQ's code-health scan. Each change is behaviour-preserving;",
        "nothing else was touched.",
        "",
        "| file | line | rule | change |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{c['path']}` | {c['line'] or ''} | {c['rule']} | {c['change']}: `{c['name']}` |" for c in changes
    ]
    if dropped:
        lines += ["", "Left out, because applying them could not be proven safe:", ""]
        lines += [
            f"- `{d['path']}`:{d['line'] or ''} {d['rule']} `{d['name']}`: {d['reason']}" for d in dropped
        ]
    return "\n".join(lines)


def _fixes_apply(text: str, fixes: list[CodeFinding]) -> str:
    try:
        return edits_apply(text, [e for f in fixes for e in f.extra["edits"]])
    except (KeyError, TypeError) as exc:
        raise ValueError("malformed edits") from exc


def removed_names(finding: CodeFinding) -> set[str]:
    """The names an unused-import removal takes away from its module (``a.b.c`` binds ``a``, or ``c``
    when imported from ``a.b``): the proof checks none of them is still used."""
    if _rule(finding) not in UNUSED_IMPORT_RULES:
        return set()
    parts = imported_module(finding).split(".")
    return {parts[0], parts[-1]}


def pull_request_open(repository: Repository, *, client: GitHubClient | None = None) -> AutoPullRequest:
    """Open one pull request with every eligible open fix of the latest scan."""
    if not repository.on_github:
        raise CodehealthError("not_on_github", "auto-PRs need a repository on GitHub", status=422)
    client = client or GitHubClient()
    owner, name = repository.github_owner, repository.github_name
    try:
        pull_requests_sync(repository, client)
        if (
            repository.pull_requests.filter(status=PullStatus.OPEN).count()
            >= settings.CODEHEALTH_MAX_OPEN_PRS
        ):
            raise CodehealthError(
                "too_many_prs",
                f"{settings.CODEHEALTH_MAX_OPEN_PRS} auto-PRs are open already; merge or close one first",
                status=409,
            )
        findings = [f for f in repository.findings.open().order_by("path", "line") if fix_eligible(f)]
        if not findings:
            raise CodehealthError("nothing_to_fix", "no open finding has a mechanical fix", status=409)
        scan = repository.scans.filter(status=ScanStatus.DONE).exclude(commit_sha="").first()
        base = scan.commit_sha if scan else client.ref_get(owner, name, repository.default_branch)
        base_tree = client.commit_get(owner, name, base)["tree"]
        by_path: dict[str, list[CodeFinding]] = defaultdict(list)
        for finding in findings:
            by_path[finding.path].append(finding)
        entries, changes, dropped = [], [], []
        for path, group in sorted(by_path.items()):
            if len(group) > 1:  # a reformat rewrites the whole file: the precise fixes go first, and the
                # next scan's reformat is computed on the file they leave
                group = [f for f in group if f.name != FORMAT_RULE]
            original = client.content(owner, name, path, ref=base).decode("utf-8")
            fixed, kept, left_out = file_prove(
                path, original, group, apply=_fixes_apply, removed_by=removed_names
            )
            dropped += [dropped_entry(path, f.line, _rule(f), f.name, why) for f, why in left_out]
            if not kept or fixed == original:
                continue
            blob = client.blob_create(owner, name, fixed.encode("utf-8"))
            entries.append({"path": path, "mode": "100644", "type": "blob", "sha": blob})
            changes += [
                {
                    "finding_id": f.pk,
                    "path": path,
                    "line": f.line,
                    "rule": _rule(f),
                    "name": f.name,
                    "change": MECHANICAL_RULES[_rule(f)],
                }
                for f in kept
            ]
        if not entries:
            reasons = "; ".join(f"{d['path']}:{d['line'] or ''} {d['reason']}" for d in dropped[:3])
            raise CodehealthError(
                "nothing_to_fix",
                "no fix applies safely to the files at the scanned commit"
                + (f" ({reasons})" if reasons else ""),
                status=409,
            )
        tree = client.tree_create(owner, name, base_tree=base_tree, entries=entries)
        rules = sorted({c["rule"] for c in changes})
        title = f"Code health: {len(changes)} mechanical fix{'es' if len(changes) != 1 else ''} ({', '.join(rules)})"
        commit = client.commit_create(
            owner, name, message=f"{title}\n\n{_body(changes)}", tree=tree, parents=[base]
        )
        branch = f"codehealth/fixes-{hashlib.sha256(commit.encode()).hexdigest()[:10]}"
        client.ref_create(owner, name, branch=branch, sha=commit)
        body = _body(changes, dropped)
        pull = client.pull_create(
            owner, name, head=branch, base=repository.default_branch, title=title, body=body
        )
    except GitHubError as exc:
        status = 429 if exc.retry_at else 502
        raise CodehealthError("github_refused", exc.message[:300], status=status) from exc
    with transaction.atomic():
        row = AutoPullRequest.objects.create(
            repository=repository,
            number=pull.number,
            url=pull.url,
            branch=branch,
            title=title[:200],
            body=body,
            commit_sha=commit,
            changes=changes,
            dropped=dropped,
        )
        publish(
            TOPIC,
            "pull_request_opened",
            {"repository_id": repository.pk, "number": pull.number},
        )
    return row
