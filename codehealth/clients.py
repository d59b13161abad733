"""GitHub's REST API (``GITHUB_API_URL``): Actions runs, jobs and artifacts, check runs and their
annotations, contents and trees, the git data API and pull requests.

Pure I/O over the project's HTTP session; no models. What GitHub does that a naive client gets wrong,
handled here:

- conditional requests: every GET remembers its ``ETag`` and sends ``If-None-Match``; a 304 (which
  costs no rate limit) answers from the cache;
- the primary rate limit: ``x-ratelimit-remaining: 0`` on a 403 or 429 means wait until
  ``x-ratelimit-reset`` (epoch seconds);
- the secondary rate limit: a 403 or 429 with ``retry-after`` means wait that long, and without it
  at least one minute;
- a wait longer than ``GITHUB_MAX_WAIT_SECONDS`` is not slept through: the call fails (retryable) so a
  job can come back later instead of parking a worker;
- pagination by the ``Link`` header (``rel="next"``), bounded by ``GITHUB_MAX_PAGES``;
- an artifact download answers 302 to a short-lived blob URL, fetched without our token; the zip and
  what it unpacks to are capped.

The client owns its retry loop (the session only gives timeouts): GitHub's rate-limit rules (a 403
that is really a 429, the reset time, the one-minute rule) are its own, and every pause goes through
``sleep`` so tests can watch them.
"""

import base64
import io
import re
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings

from juggernaut.http import HttpSession, http_session, retry_after_seconds, url_shown
from juggernaut.redaction import scrub_certain, scrub_payload
from juggernaut.urlguard import OutboundRefused, guarded_session

API_VERSION = "2022-11-28"
SECONDARY_WAIT_SECONDS = 60.0  # GitHub: "wait for at least one minute before retrying"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
ETAG_CACHE_SIZE = 512
ARTIFACT_DEADLINE_SECONDS = 300.0  # a whole artifact download, however the blob store trickles


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", "", None


_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class GitHubError(Exception):
    """GitHub refused or failed. ``permanent``: retrying the same request cannot help.

    ``status`` is the HTTP status (None when nothing answered), ``errors`` the ``errors`` list of
    GitHub's error JSON (422 details), ``retry_at`` the epoch second after which a rate-limited call
    may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        status: int | None = None,
        errors: list | None = None,
        retry_at: float | None = None,
    ) -> None:
        message = scrub_certain(message)  # GitHub's own text, which may quote what it was sent
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status
        self.errors = scrub_payload(errors or [])
        self.retry_at = retry_at


@dataclass
class RateLimit:
    limit: int | None = None
    remaining: int | None = None
    reset: int | None = None  # epoch seconds
    resource: str = ""

    def read(self, headers) -> None:
        for name, attr in (
            ("x-ratelimit-limit", "limit"),
            ("x-ratelimit-remaining", "remaining"),
            ("x-ratelimit-reset", "reset"),
        ):
            value = headers.get(name)
            if value is not None and value.strip().isdigit():
                setattr(self, attr, int(value))
        self.resource = headers.get("x-ratelimit-resource", self.resource)


@dataclass(frozen=True)
class WorkflowRun:
    id: int
    name: str
    head_branch: str
    head_sha: str
    status: str
    conclusion: str | None


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    status: str
    conclusion: str | None
    steps: list = field(default_factory=list, compare=False, hash=False)


@dataclass(frozen=True)
class Artifact:
    id: int
    name: str
    size_in_bytes: int
    expired: bool


@dataclass(frozen=True)
class CheckRun:
    id: int
    name: str
    status: str
    conclusion: str | None
    annotations_count: int


@dataclass(frozen=True)
class Annotation:
    path: str
    start_line: int | None
    end_line: int | None
    level: str  # notice, warning, failure
    message: str
    title: str


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: str
    type: str  # blob, tree, commit
    sha: str
    size: int | None = None


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    state: str
    head: str
    base: str
    title: str
    merged: bool


def repo_path(owner: str, repo: str, *parts: object) -> str:
    """An API path under ``/repos/<owner>/<repo>/`` built from quoted segments: a part may hold slashes
    (a file path, a branch), but no segment may be empty, ``.`` or ``..`` or hold a NUL, so a path
    from a scan (``../../../../etc/passwd``) can never leave the repository's part of the API."""
    segments = [owner, repo]
    for part in parts:
        segments += str(part).split("/")
    for segment in segments:
        if segment in ("", ".", "..") or "\x00" in segment:
            raise GitHubError(f"refused an API path with the segment {segment[:50]!r}", permanent=True)
    return "/repos/" + "/".join(quote(segment, safe="") for segment in segments)


def _pull(data: dict) -> PullRequest:
    return PullRequest(
        number=int(data["number"]),
        url=str(data.get("html_url") or ""),
        state=str(data.get("state") or ""),
        head=str((data.get("head") or {}).get("ref") or ""),
        base=str((data.get("base") or {}).get("ref") or ""),
        title=str(data.get("title") or ""),
        merged=bool(data.get("merged_at")),
    )


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, None on the last page."""
    match = _NEXT_LINK.search(header or "")
    return match.group(1) if match else None


def unzip_capped(data: bytes, *, max_bytes: int) -> dict[str, bytes]:
    """The files of a zip, refusing more than ``max_bytes`` unpacked in total (read, not trusted from
    the zip's own sizes) and names that climb out of the archive."""
    files: dict[str, bytes] = {}
    total = 0
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise GitHubError("the artifact is not a zip file", permanent=True) from exc
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = info.filename.replace("\\", "/")
            if name.startswith("/") or ".." in name.split("/"):
                raise GitHubError(f"the artifact holds an unsafe path {name[:200]!r}", permanent=True)
            with archive.open(info) as member:
                chunk = member.read(max_bytes - total + 1)
            total += len(chunk)
            if total > max_bytes:
                raise GitHubError(f"the artifact unpacks to more than {max_bytes} bytes", permanent=True)
            files[name] = chunk
    return files


class GitHubClient:
    """GitHub's REST API for one token; ``rate_limit`` holds what the last answer said."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        max_retries: int | None = None,
        max_wait: float | None = None,
        session: HttpSession | None = None,
    ) -> None:
        self.base_url = (base_url or settings.GITHUB_API_URL).rstrip("/")
        self.token = settings.GITHUB_TOKEN if token is None else token
        self.max_retries = settings.HTTP_MAX_RETRIES if max_retries is None else max_retries
        self.max_wait = settings.GITHUB_MAX_WAIT_SECONDS if max_wait is None else max_wait
        # No session-level retries: the loop in _send applies GitHub's own rules.
        self.session = session or http_session(max_retries=0)
        self.session.headers.update(
            {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        )
        self.rate_limit = RateLimit()
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.time
        self._etags: OrderedDict[str, tuple[str, Any, str | None]] = OrderedDict()
        self.not_modified = 0  # answers served from the ETag cache (304s)

    # --- transport -----------------------------------------------------------------------------

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _rate_wait(self, response: requests.Response) -> float | None:
        """Seconds to wait before repeating a rate-limited request, None when it was not one."""
        if response.status_code not in (403, 429):
            return None
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        if retry_after is not None:
            return retry_after
        if response.headers.get("x-ratelimit-remaining") == "0":
            reset = self.rate_limit.reset or 0
            return max(0.0, reset - self.clock()) + 1.0
        if response.status_code == 429 or "rate limit" in _message(response).lower():
            return SECONDARY_WAIT_SECONDS
        return None

    def _send(self, method: str, url: str, *, extra: dict | None = None, **kwargs) -> requests.Response:
        attempt = 0
        backoff = 0.5
        while True:
            try:
                response = self.session.request(
                    method, url, headers={**self._headers(), **(extra or {})}, **kwargs
                )
            except requests.RequestException as exc:
                if method in IDEMPOTENT and attempt < self.max_retries:
                    attempt += 1
                    self.sleep(backoff)
                    backoff *= 2
                    continue
                raise GitHubError(f"cannot reach GitHub: {exc.__class__.__name__}") from exc
            self.rate_limit.read(response.headers)
            wait = self._rate_wait(response)
            if wait is not None:
                if wait > self.max_wait or attempt >= self.max_retries:
                    raise GitHubError(
                        f"GitHub's rate limit: retry in {wait:.0f}s",
                        status=response.status_code,
                        retry_at=self.clock() + wait,
                    )
                attempt += 1
                self.sleep(wait)
                continue
            if response.status_code in RETRY_STATUSES and method in IDEMPOTENT and attempt < self.max_retries:
                attempt += 1
                self.sleep(backoff)
                backoff *= 2
                continue
            return response

    def _error(self, response: requests.Response) -> GitHubError:
        errors = []
        try:
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("errors"), list):
                errors = body["errors"]
        except ValueError:
            pass
        status = response.status_code
        message = _message(response) or response.reason or "error"
        return GitHubError(
            f"GitHub answered {status}: {message[:300]}",
            status=status,
            errors=errors,
            permanent=status not in RETRY_STATUSES | {408, 429},
        )

    def _url(self, path: str) -> str:
        """``path`` under the API's base URL; an absolute URL (a ``Link: rel="next"`` from an answer) only
        on the API's own origin, since the token goes with it."""
        if not path.startswith(("http://", "https://")):
            return f"{self.base_url}{path}"
        if _origin(path) != _origin(self.base_url):
            raise GitHubError(
                f"refused to follow a link off the API's origin: {url_shown(path)}", permanent=True
            )
        return path

    def _get(self, path: str, params: dict | None = None) -> tuple[Any, str | None]:
        """A GET's JSON and its ``Link`` header, conditional on the cached ETag."""
        url = self._url(path)
        key = url + "?" + "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        cached = self._etags.get(key)
        headers = {"If-None-Match": cached[0]} if cached else {}
        response = self._send("GET", url, params=params, extra=headers)
        if response.status_code == 304 and cached:
            self.not_modified += 1
            self._etags.move_to_end(key)
            return cached[1], cached[2]
        if response.status_code != 200:
            raise self._error(response)
        try:
            data = response.json()
        except ValueError as exc:
            raise GitHubError(f"{path} did not answer JSON", status=200) from exc
        link = response.headers.get("Link")
        etag = response.headers.get("ETag")
        if etag:
            self._etags[key] = (etag, data, link)
            self._etags.move_to_end(key)
            while len(self._etags) > ETAG_CACHE_SIZE:
                self._etags.popitem(last=False)
        return data, link

    def _write(self, method: str, path: str, body: dict) -> Any:
        response = self._send(method, self._url(path), json=body)
        if response.status_code not in (200, 201):
            raise self._error(response)
        return response.json()

    def _pages(
        self, path: str, *, key: str | None = None, params: dict | None = None, max_pages: int | None = None
    ) -> list:
        """Every item of a listing, page after page by ``Link: rel="next"``."""
        params = {"per_page": 100, **(params or {})}
        items: list = []
        url: str | None = path
        for _ in range(max_pages or settings.GITHUB_MAX_PAGES):
            if url is None:
                break
            data, link = self._get(url, params if url == path else None)
            items.extend((data.get(key) or []) if key else (data or []))
            url = next_link(link)
        return items

    # --- Actions ---------------------------------------------------------------------------------

    def workflow_runs(
        self,
        owner: str,
        repo: str,
        *,
        branch: str | None = None,
        status: str | None = None,
        max_pages: int | None = None,
    ) -> list[WorkflowRun]:
        """Workflow runs, newest first, optionally of one branch or status (``completed``, ``success``)."""
        params = {k: v for k, v in (("branch", branch), ("status", status)) if v}
        return [
            WorkflowRun(
                int(r["id"]),
                str(r.get("name") or ""),
                str(r.get("head_branch") or ""),
                str(r.get("head_sha") or ""),
                str(r.get("status") or ""),
                r.get("conclusion"),
            )
            for r in self._pages(
                repo_path(owner, repo, "actions/runs"),
                key="workflow_runs",
                params=params,
                max_pages=max_pages,
            )
        ]

    def run_jobs(self, owner: str, repo: str, run_id: int) -> list[Job]:
        """The jobs of a run, with their steps."""
        return [
            Job(
                int(j["id"]),
                str(j.get("name") or ""),
                str(j.get("status") or ""),
                j.get("conclusion"),
                list(j.get("steps") or []),
            )
            for j in self._pages(repo_path(owner, repo, "actions/runs", run_id, "jobs"), key="jobs")
        ]

    def run_artifacts(self, owner: str, repo: str, run_id: int) -> list[Artifact]:
        """The artifacts a run uploaded (expired ones included, flagged)."""
        return [
            Artifact(
                int(a["id"]),
                str(a.get("name") or ""),
                int(a.get("size_in_bytes") or 0),
                bool(a.get("expired")),
            )
            for a in self._pages(repo_path(owner, repo, "actions/runs", run_id, "artifacts"), key="artifacts")
        ]

    def artifact_download(
        self,
        owner: str,
        repo: str,
        artifact_id: int,
        *,
        max_bytes: int | None = None,
        max_unzipped_bytes: int | None = None,
    ) -> dict[str, bytes]:
        """An artifact's files (name -> bytes). GitHub answers 302 to a blob URL, which is fetched
        without our token and through the outbound guard (the URL is the answer's, not a setting); the
        zip is read up to ``max_bytes`` and unpacked up to ``max_unzipped_bytes``."""
        max_bytes = max_bytes or settings.GITHUB_ARTIFACT_MAX_BYTES
        max_unzipped = max_unzipped_bytes or settings.GITHUB_ARTIFACT_MAX_UNZIPPED_BYTES
        url = self._url(repo_path(owner, repo, "actions/artifacts", artifact_id, "zip"))
        response = self._send("GET", url, allow_redirects=False)
        if response.status_code in (301, 302, 307) and response.headers.get("Location"):
            blobs = guarded_session(max_retries=1, max_bytes=max_bytes, deadline=ARTIFACT_DEADLINE_SECONDS)
            try:
                response = blobs.get(response.headers["Location"])
            except OutboundRefused as exc:
                raise GitHubError(f"the artifact was not downloaded: {exc}", permanent=True) from exc
            except requests.RequestException as exc:
                raise GitHubError(f"cannot download the artifact: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise self._error(response)
        buffer = response.content
        if len(buffer) > max_bytes:
            raise GitHubError(f"the artifact is larger than {max_bytes} bytes", permanent=True)
        return unzip_capped(buffer, max_bytes=max_unzipped)

    # --- checks ----------------------------------------------------------------------------------

    def check_runs(self, owner: str, repo: str, ref: str) -> list[CheckRun]:
        """The check runs of a commit (sha, branch or tag)."""
        return [
            CheckRun(
                int(c["id"]),
                str(c.get("name") or ""),
                str(c.get("status") or ""),
                c.get("conclusion"),
                int((c.get("output") or {}).get("annotations_count") or 0),
            )
            for c in self._pages(repo_path(owner, repo, "commits", ref, "check-runs"), key="check_runs")
        ]

    def check_run_annotations(self, owner: str, repo: str, check_run_id: int) -> list[Annotation]:
        """A check run's annotations (file, lines, level, message)."""
        return [
            Annotation(
                str(a.get("path") or ""),
                a.get("start_line"),
                a.get("end_line"),
                str(a.get("annotation_level") or ""),
                str(a.get("message") or ""),
                str(a.get("title") or ""),
            )
            for a in self._pages(repo_path(owner, repo, "check-runs", check_run_id, "annotations"))
        ]

    # --- contents and trees ----------------------------------------------------------------------

    def content(self, owner: str, repo: str, path: str, *, ref: str | None = None) -> bytes:
        """One file's bytes at ``ref`` (default: the default branch)."""
        data, _ = self._get(repo_path(owner, repo, "contents", path), {"ref": ref} if ref else None)
        if not isinstance(data, dict) or data.get("type") != "file":
            raise GitHubError(f"{path[:200]} is not a file", permanent=True, status=200)
        return base64.b64decode(data.get("content") or "")

    def tree(self, owner: str, repo: str, sha: str, *, recursive: bool = True) -> list[TreeEntry]:
        """A tree's entries (all levels when ``recursive``)."""
        data, _ = self._get(
            repo_path(owner, repo, "git/trees", sha), {"recursive": "1"} if recursive else None
        )
        return [
            TreeEntry(
                str(e["path"]),
                str(e.get("mode") or ""),
                str(e.get("type") or ""),
                str(e["sha"]),
                e.get("size"),
            )
            for e in data.get("tree") or []
        ]

    # --- git data --------------------------------------------------------------------------------

    def ref_get(self, owner: str, repo: str, branch: str) -> str:
        """The commit sha a branch points at."""
        data, _ = self._get(repo_path(owner, repo, "git/ref/heads", branch))
        return str(data["object"]["sha"])

    def commit_get(self, owner: str, repo: str, sha: str) -> dict:
        """A commit: ``sha``, ``tree`` (its tree sha), ``parents`` (shas), ``message``."""
        data, _ = self._get(repo_path(owner, repo, "git/commits", sha))
        return {
            "sha": data["sha"],
            "tree": data["tree"]["sha"],
            "message": data.get("message") or "",
            "parents": [p["sha"] for p in data.get("parents") or []],
        }

    def blob_create(self, owner: str, repo: str, content: bytes) -> str:
        """Store a file's bytes; its blob sha."""
        body = {"content": base64.b64encode(content).decode(), "encoding": "base64"}
        return str(self._write("POST", repo_path(owner, repo, "git/blobs"), body)["sha"])

    def tree_create(self, owner: str, repo: str, *, base_tree: str, entries: list[dict]) -> str:
        """A tree on ``base_tree`` with ``entries`` (``path``, ``mode``, ``type``, ``sha``) changed."""
        body = {"base_tree": base_tree, "tree": entries}
        return str(self._write("POST", repo_path(owner, repo, "git/trees"), body)["sha"])

    def commit_create(self, owner: str, repo: str, *, message: str, tree: str, parents: list[str]) -> str:
        """A commit of ``tree`` on ``parents``; its sha."""
        body = {"message": message, "tree": tree, "parents": parents}
        return str(self._write("POST", repo_path(owner, repo, "git/commits"), body)["sha"])

    def ref_create(self, owner: str, repo: str, *, branch: str, sha: str) -> None:
        """A new branch at ``sha`` (422 when it exists)."""
        self._write("POST", repo_path(owner, repo, "git/refs"), {"ref": f"refs/heads/{branch}", "sha": sha})

    def ref_update(self, owner: str, repo: str, *, branch: str, sha: str, force: bool = False) -> None:
        """Move a branch to ``sha`` (fast-forward only unless ``force``)."""
        self._write("PATCH", repo_path(owner, repo, "git/refs/heads", branch), {"sha": sha, "force": force})

    # --- pull requests ---------------------------------------------------------------------------

    def pull_create(
        self, owner: str, repo: str, *, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        """Open a pull request of ``head`` into ``base``."""
        data = self._write(
            "POST",
            repo_path(owner, repo, "pulls"),
            {"head": head, "base": base, "title": title, "body": body},
        )
        return _pull(data)

    def pulls_list(self, owner: str, repo: str, *, state: str = "open") -> list[PullRequest]:
        """Pull requests in ``state`` (open, closed, all)."""
        return [_pull(p) for p in self._pages(repo_path(owner, repo, "pulls"), params={"state": state})]


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("message") or "") if isinstance(body, dict) else ""
