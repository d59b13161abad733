"""A fake of OSV's API (api.osv.dev) as an advisory refresh uses it.

``POST /v1/querybatch`` with ``{"queries": [...]}``: at most 1000 queries (more is a 400), a query with
both ``version`` and a ``purl`` is a 400, the results come back in the queries' order, each ``{}``
when nothing affects the package version, else ``{"vulns": [{"id", "modified"}]}`` (ids only, like the
real service), cut to ``page_size`` with a ``next_page_token`` to ask again with ``page_token``.
``GET /v1/vulns/<id>`` is the whole record, or 404 ``{"code": 5, "message": "Bug not found."}``.
Records name the versions they affect in ``affected[].versions`` (OSV lists them for PyPI and npm).
``down`` answers 503 to everything; ``hits`` records each call.
"""

import json
import re
import threading
from contextlib import contextmanager
from urllib.parse import unquote

from tests.fakes.server import FakeServer, QuietHandler


def _name(ecosystem: str, name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower() if ecosystem == "PyPI" else name


class FakeOSV:
    def __init__(self, records: list[dict], *, page_size: int = 1000) -> None:
        self.records = {r["id"]: r for r in records}
        self.page_size = page_size
        self.down = False
        self.hits: list[str] = []
        self.lock = threading.Lock()
        self.url = ""

    def _affecting(self, query: dict) -> list[dict]:
        package = query.get("package") or {}
        ecosystem, name = (
            package.get("ecosystem", ""),
            _name(package.get("ecosystem", ""), package.get("name", "")),
        )
        found = []
        for record in self.records.values():
            for affected in record.get("affected", []):
                p = affected.get("package", {})
                if (p.get("ecosystem"), _name(p.get("ecosystem", ""), p.get("name", ""))) != (
                    ecosystem,
                    name,
                ):
                    continue
                if query.get("version") in affected.get("versions", []):
                    found.append({"id": record["id"], "modified": record.get("modified", "")})
                    break
        return sorted(found, key=lambda v: v["id"])

    def querybatch(self, body: dict) -> tuple[int, dict]:
        queries = body.get("queries")
        if not isinstance(queries, list):
            return 400, {"code": 3, "message": "Invalid query."}
        if len(queries) > 1000:
            return 400, {"code": 3, "message": "Too many queries."}
        results = []
        for query in queries:
            if query.get("version") and (query.get("package") or {}).get("purl"):
                return 400, {"code": 3, "message": "version specified in params and PURL query"}
            vulns = self._affecting(query)
            start = int(query.get("page_token") or 0)
            page = vulns[start : start + self.page_size]
            result: dict = {"vulns": page} if page else {}
            if start + self.page_size < len(vulns):
                result["next_page_token"] = str(start + self.page_size)
            results.append(result)
        return 200, {"results": results}

    @contextmanager
    def serve(self):
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                with fake.lock:
                    fake.hits.append(f"POST {self.path}")
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fake.down:
                    return self.send_json(503, {"code": 14, "message": "unavailable"})
                if self.path != "/v1/querybatch":
                    return self.send_json(404, {"code": 5, "message": "Not Found"})
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self.send_json(400, {"code": 3, "message": "Invalid JSON payload."})
                self.send_json(*fake.querybatch(body if isinstance(body, dict) else {}))

            def do_GET(self) -> None:
                with fake.lock:
                    fake.hits.append(f"GET {self.path}")
                if fake.down:
                    return self.send_json(503, {"code": 14, "message": "unavailable"})
                record = fake.records.get(unquote(self.path.removeprefix("/v1/vulns/")))
                if not self.path.startswith("/v1/vulns/") or record is None:
                    return self.send_json(404, {"code": 5, "message": "Bug not found."})
                self.send_json(200, record)

        with FakeServer(Handler) as server:
            self.url = server.url
            yield self
