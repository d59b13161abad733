"""A fake GitHub REST API on a loopback port, quirks included.

Holds one repository's state (``fake.owner``/``fake.repo``): workflow runs with jobs and artifacts,
check runs with annotations, files (``fake.files``: path -> bytes on the default branch) and the git
data a pull-request sequence mutates (blobs, trees, commits, refs, pulls). It reproduces:

- authentication: ``Authorization: Bearer <TOKEN>``; anything else gets 401 ``Bad credentials``;
- ``ETag`` on every GET answer and 304 (with no body) on a matching ``If-None-Match``, which, as on
  GitHub, does not count against the rate limit;
- pagination by ``per_page``/``page`` with a ``Link`` header (``next``, ``last``);
- the primary rate limit (``x-ratelimit-limit/remaining/reset/used/resource`` on every answer; once
  ``fake.primary_limit`` is spent, 403 with ``x-ratelimit-remaining: 0`` until ``fake.reset_at``);
- the secondary rate limit (``fake.secondary_next(retry_after=...)``: the next request gets 403 "You
  have exceeded a secondary rate limit", with ``retry-after`` when given, without it otherwise);
- an artifact download answering 302 to a blob URL that refuses requests carrying a token;
- 404 ``Not Found`` and 422 ``Validation Failed`` in GitHub's error JSON (a ref or pull request that
  already exists, a tree entry whose blob is unknown).

``fake.requests`` records ``(method, path)`` of every request, in order.
"""

import base64
import hashlib
import io
import json
import re
import threading
import time
import zipfile
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeServer, QuietHandler

TOKEN = "ghp_fake_token_0123456789"
DOCS = "https://docs.github.com/rest"


def _sha(kind: str, payload: bytes) -> str:
    return hashlib.sha1(kind.encode() + b"\x00" + payload).hexdigest()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class Refusal(Exception):
    def __init__(self, status: int, message: str, errors: list | None = None) -> None:
        self.status, self.message, self.errors = status, message, errors


@dataclass
class FakeGitHub:
    owner: str = "acme"
    repo: str = "shop"
    default_branch: str = "main"
    files: dict = field(default_factory=dict)  # path -> bytes, the default branch's first commit
    runs: list = field(default_factory=list)  # dicts as the API returns them
    jobs: dict = field(default_factory=dict)  # run id -> list of job dicts
    artifacts: dict = field(default_factory=dict)  # run id -> list of artifact dicts
    artifact_zips: dict = field(default_factory=dict)  # artifact id -> zip bytes
    check_runs: dict = field(default_factory=dict)  # ref -> list of check run dicts
    annotations: dict = field(default_factory=dict)  # check run id -> list of annotation dicts
    blobs: dict = field(default_factory=dict)  # sha -> bytes
    trees: dict = field(default_factory=dict)  # sha -> {path: (mode, sha)}
    commits: dict = field(default_factory=dict)  # sha -> {"tree", "parents", "message"}
    refs: dict = field(default_factory=dict)  # "heads/main" -> sha
    pulls: list = field(default_factory=list)
    primary_limit: int = 5000
    reset_at: int = 0  # epoch seconds; 0: an hour from the first request
    used: int = 0
    requests: list = field(default_factory=list)
    url: str = ""
    _secondary: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.commit_files(self.files or {"README.md": b"# shop\n"}, message="initial")

    # --- arranging -------------------------------------------------------------------------------

    def commit_files(self, files: dict[str, bytes], *, message: str) -> str:
        """Make the default branch a commit holding exactly ``files``."""
        tree = {}
        for path, data in files.items():
            sha = _sha("blob", data)
            self.blobs[sha] = data
            tree[path] = ("100644", sha)
        tree_sha = self._tree_store(tree)
        parent = self.refs.get(f"heads/{self.default_branch}")
        sha = self._commit_store(tree_sha, [parent] if parent else [], message)
        self.refs[f"heads/{self.default_branch}"] = sha
        return sha

    def add_artifact(self, run_id: int, artifact_id: int, name: str, files: dict[str, bytes]) -> None:
        data = zip_bytes(files)
        self.artifact_zips[artifact_id] = data
        self.artifacts.setdefault(run_id, []).append(
            {"id": artifact_id, "name": name, "size_in_bytes": len(data), "expired": False}
        )

    def secondary_next(self, retry_after: int | None = None) -> None:
        """The next request hits the secondary rate limit."""
        self._secondary.append(retry_after)

    def file_at(self, ref: str, path: str) -> bytes | None:
        """A file's bytes at a branch or commit sha; None when the ref or the file is unknown."""
        sha = ref if ref in self.commits else self.refs.get(f"heads/{ref}")
        if sha is None:
            return None
        tree = self.trees[self.commits[sha]["tree"]]
        entry = tree.get(path)
        return self.blobs[entry[1]] if entry else None

    # --- state -----------------------------------------------------------------------------------

    def _tree_store(self, tree: dict) -> str:
        sha = _sha("tree", json.dumps(sorted(tree.items())).encode())
        self.trees[sha] = tree
        return sha

    def _commit_store(self, tree: str, parents: list, message: str) -> str:
        sha = _sha("commit", json.dumps([tree, parents, message, time.time_ns()]).encode())
        self.commits[sha] = {"tree": tree, "parents": parents, "message": message}
        return sha

    # --- answering -------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict, body: dict):
        prefix = f"/repos/{self.owner}/{self.repo}"
        if not path.startswith(prefix + "/"):
            raise Refusal(404, "Not Found")
        rest = path[len(prefix) :]
        get = method == "GET"
        if get and rest == "/actions/runs":
            runs = [r for r in self.runs if not query.get("branch") or r["head_branch"] == query["branch"]]
            if query.get("status"):  # GitHub's filter takes a status or a conclusion
                runs = [r for r in runs if query["status"] in (r.get("status"), r.get("conclusion"))]
            return "workflow_runs", runs
        if get and (m := re.fullmatch(r"/actions/runs/(\d+)/jobs", rest)):
            return "jobs", self.jobs.get(int(m[1]), [])
        if get and (m := re.fullmatch(r"/actions/runs/(\d+)/artifacts", rest)):
            return "artifacts", self.artifacts.get(int(m[1]), [])
        if get and (m := re.fullmatch(r"/actions/artifacts/(\d+)/zip", rest)):
            if int(m[1]) not in self.artifact_zips:
                raise Refusal(404, "Not Found")
            return "redirect", f"{self.url}/_blobs/artifact-{m[1]}.zip?sig=short-lived"
        if get and (m := re.fullmatch(r"/commits/([^/]+)/check-runs", rest)):
            return "check_runs", self.check_runs.get(m[1], [])
        if get and (m := re.fullmatch(r"/check-runs/(\d+)/annotations", rest)):
            return None, self.annotations.get(int(m[1]), [])
        if get and rest.startswith("/contents/"):
            data = self.file_at(query.get("ref") or self.default_branch, rest[len("/contents/") :])
            if data is None:
                raise Refusal(404, "Not Found")
            return "object", {
                "type": "file",
                "path": rest[10:],
                "encoding": "base64",
                "content": base64.encodebytes(data).decode(),
            }
        if get and (m := re.fullmatch(r"/git/trees/([0-9a-f]+)", rest)):
            tree = self.trees.get(m[1])
            if tree is None:
                raise Refusal(404, "Not Found")
            entries = [
                {"path": p, "mode": mode, "type": "blob", "sha": s, "size": len(self.blobs[s])}
                for p, (mode, s) in sorted(tree.items())
            ]
            return "object", {"sha": m[1], "tree": entries, "truncated": False}
        if get and (m := re.fullmatch(r"/git/ref/(heads/.+)", rest)):
            if m[1] not in self.refs:
                raise Refusal(404, "Not Found")
            return "object", {"ref": f"refs/{m[1]}", "object": {"sha": self.refs[m[1]], "type": "commit"}}
        if get and (m := re.fullmatch(r"/git/commits/([0-9a-f]+)", rest)):
            commit = self.commits.get(m[1])
            if commit is None:
                raise Refusal(404, "Not Found")
            return "object", {
                "sha": m[1],
                "message": commit["message"],
                "tree": {"sha": commit["tree"]},
                "parents": [{"sha": p} for p in commit["parents"]],
            }
        if method == "POST" and rest == "/git/blobs":
            data = (
                base64.b64decode(body["content"])
                if body.get("encoding") == "base64"
                else body["content"].encode()
            )
            sha = _sha("blob", data)
            self.blobs[sha] = data
            return "created", {"sha": sha}
        if method == "POST" and rest == "/git/trees":
            base = dict(self.trees.get(body.get("base_tree") or "", {}))
            for entry in body.get("tree") or []:
                if entry.get("sha") is None:
                    base.pop(entry["path"], None)
                elif entry["sha"] not in self.blobs:
                    raise Refusal(
                        422, "Invalid tree info", [{"resource": "Tree", "field": "sha", "code": "invalid"}]
                    )
                else:
                    base[entry["path"]] = (entry.get("mode") or "100644", entry["sha"])
            return "created", {"sha": self._tree_store(base)}
        if method == "POST" and rest == "/git/commits":
            if body.get("tree") not in self.trees:
                raise Refusal(422, "Tree SHA does not exist")
            return "created", {
                "sha": self._commit_store(body["tree"], body.get("parents") or [], body["message"])
            }
        if method == "POST" and rest == "/git/refs":
            name = str(body.get("ref") or "").removeprefix("refs/")
            if name in self.refs:
                raise Refusal(422, "Reference already exists")
            if body.get("sha") not in self.commits:
                raise Refusal(422, "Object does not exist")
            self.refs[name] = body["sha"]
            return "created", {"ref": f"refs/{name}", "object": {"sha": body["sha"]}}
        if method == "PATCH" and (m := re.fullmatch(r"/git/refs/(heads/.+)", rest)):
            if m[1] not in self.refs:
                raise Refusal(422, "Reference does not exist")
            self.refs[m[1]] = body["sha"]
            return "object", {"ref": f"refs/{m[1]}", "object": {"sha": body["sha"]}}
        if method == "POST" and rest == "/pulls":
            if f"heads/{body.get('head')}" not in self.refs:
                raise Refusal(
                    422,
                    "Validation Failed",
                    [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
                )
            if any(p["head"]["ref"] == body["head"] and p["state"] == "open" for p in self.pulls):
                raise Refusal(
                    422,
                    "Validation Failed",
                    [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {self.owner}:{body['head']}.",
                        }
                    ],
                )
            number = len(self.pulls) + 1
            pull = {
                "number": number,
                "state": "open",
                "title": body["title"],
                "body": body.get("body") or "",
                "html_url": f"https://github.com/{self.owner}/{self.repo}/pull/{number}",
                "merged_at": None,
                "head": {"ref": body["head"]},
                "base": {"ref": body["base"]},
            }
            self.pulls.append(pull)
            return "created", pull
        if get and rest == "/pulls":
            state = query.get("state") or "open"
            return None, [p for p in self.pulls if state == "all" or p["state"] == state]
        raise Refusal(404, "Not Found")

    def handler(self) -> type:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                with fake._lock:
                    fake.requests.append((method, parts.path))
                    if parts.path.startswith("/_blobs/"):
                        return self._blob(parts.path)
                    if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                        return self._json(401, {"message": "Bad credentials", "documentation_url": DOCS})
                    if fake._secondary:
                        retry_after = fake._secondary.pop(0)
                        extra = {"retry-after": str(retry_after)} if retry_after is not None else {}
                        message = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
                        return self._json(403, {"message": message, "documentation_url": DOCS}, extra)
                    if not fake.reset_at:
                        fake.reset_at = int(time.time()) + 3600
                    if time.time() >= fake.reset_at:
                        fake.used, fake.reset_at = 0, int(time.time()) + 3600
                    if fake.used >= fake.primary_limit:
                        message = "API rate limit exceeded for user ID 1."
                        return self._json(
                            403, {"message": message, "documentation_url": DOCS}, self._limits()
                        )
                    try:
                        key, payload = fake.answer(method, parts.path, query, body)
                    except Refusal as exc:
                        fake.used += 1
                        error = {"message": exc.message, "documentation_url": DOCS}
                        if exc.errors:
                            error["errors"] = exc.errors
                        return self._json(exc.status, error, self._limits())
                    if key == "redirect":
                        fake.used += 1
                        return self._send(302, b"", {"Location": payload, **self._limits()})
                    status = 201 if key == "created" else 200
                    link = {}
                    if method == "GET" and isinstance(payload, list):
                        payload, link = self._page(parts.path, query, payload)
                        payload = {"total_count": len(payload), key: payload} if key else payload
                    raw = json.dumps(payload).encode()
                    etag = '"' + hashlib.sha1(raw).hexdigest() + '"'
                    if method == "GET" and self.headers.get("If-None-Match") == etag:
                        return self._send(304, b"", {"ETag": etag, **self._limits()})
                    fake.used += 1
                    headers = {"ETag": etag, **link, **self._limits()} if method == "GET" else self._limits()
                    self._send(status, raw, {"Content-Type": "application/json; charset=utf-8", **headers})

            def _page(self, path: str, query: dict, rows: list) -> tuple[list, dict]:
                per_page = min(int(query.get("per_page") or 30), 100)
                page = int(query.get("page") or 1)
                last = max(1, -(-len(rows) // per_page))
                links = []
                base = {k: v for k, v in query.items() if k != "page"}
                qs = "&".join(f"{k}={v}" for k, v in base.items())
                if page < last:
                    links.append(f'<{fake.url}{path}?{qs}&page={page + 1}>; rel="next"')
                    links.append(f'<{fake.url}{path}?{qs}&page={last}>; rel="last"')
                chunk = rows[(page - 1) * per_page : page * per_page]
                return chunk, ({"Link": ", ".join(links)} if links else {})

            def _blob(self, path: str) -> None:
                if self.headers.get("Authorization"):  # blob storage rejects a token it did not issue
                    return self._send(
                        400, b"<Error>InvalidAuthenticationInfo</Error>", {"Content-Type": "application/xml"}
                    )
                artifact = int(re.search(r"artifact-(\d+)", path)[1])
                data = fake.artifact_zips[artifact]
                self._send(200, data, {"Content-Type": "application/zip"})

            def _limits(self) -> dict:
                return {
                    "x-ratelimit-limit": str(fake.primary_limit),
                    "x-ratelimit-remaining": str(max(fake.primary_limit - fake.used, 0)),
                    "x-ratelimit-reset": str(fake.reset_at),
                    "x-ratelimit-used": str(fake.used),
                    "x-ratelimit-resource": "core",
                }

            def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
                raw = json.dumps(payload).encode()
                self._send(
                    status, raw, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
                )

            def _send(self, status: int, body: bytes, headers: dict) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

        return Handler

    def serve(self) -> FakeServer:
        server = FakeServer(self.handler())
        self.url = server.url
        return server
