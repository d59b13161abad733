"""A fake package registry speaking both JSON APIs a dependency audit reads.

PyPI: ``GET /pypi/<name>/json`` → ``{"info": {"name", "version"}, "releases": {...}}``; names are matched
the way PyPI normalises them (case, ``_``/``.``/``-``). npm: ``GET /<name>`` (a scoped name arrives as
``@scope%2Fname``) → ``{"name", "dist-tags": {"latest"}, "versions": {...}}``. Unknown packages are 404
with each registry's own body. ``hits`` records every path asked, so tests can see the cache at work.
"""

import re
import threading
import time
from contextlib import contextmanager
from urllib.parse import unquote

from tests.fakes.server import FakeServer, QuietHandler


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class FakeRegistries:
    def __init__(
        self, pypi: dict[str, str] | None = None, npm: dict[str, str] | None = None, *, delay: float = 0.0
    ) -> None:
        self.delay = delay  # seconds each answer takes, as a registry across the internet does
        self.pypi = {_pep503(k): v for k, v in (pypi or {}).items()}
        self.npm = dict(npm or {})
        self.hits: list[str] = []
        self.lock = threading.Lock()
        self.url = ""

    def answer(self, path: str) -> tuple[int, dict]:
        with self.lock:
            self.hits.append(path)
        time.sleep(self.delay)
        parts = path.split("?")[0].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "pypi" and parts[2] == "json":
            latest = self.pypi.get(_pep503(parts[1]))
            if latest is None:
                return 404, {"message": "Not Found"}
            return 200, {"info": {"name": parts[1], "version": latest}, "releases": {latest: []}}
        name = unquote("/".join(parts))
        latest = self.npm.get(name)
        if latest is None:
            return 404, {"error": "Not found"}
        return 200, {"name": name, "dist-tags": {"latest": latest}, "versions": {latest: {}}}

    @contextmanager
    def serve(self):
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self.send_json(*fake.answer(self.path))

        with FakeServer(Handler) as server:
            self.url = server.url
            yield self
