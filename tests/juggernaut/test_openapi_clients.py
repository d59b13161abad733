"""The live OpenAPI document as a Next.js frontend's tools take it: Redocly's `recommended` lint passes
with no errors, openapi-typescript (default flags) makes a client of it, a program calling one
operation of every area compiles with `tsc --strict`, and runs against a live server with a token."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from logscrawler.models import LogService
from tests.conftest import DaphneServer
from tests.routing.conftest import seeded_policies  # noqa: F401 (a fixture)

pytestmark = pytest.mark.process  # a live daphne and Node

CLIENTS = Path(__file__).resolve().parent.parent / "clients"
BIN = CLIENTS / "node_modules" / ".bin"
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "target": "ES2022",
        "module": "NodeNext",
        "moduleResolution": "NodeNext",
        "skipLibCheck": True,
        "types": [],
        "outDir": "out",
    },
    "files": ["openapi-client.ts"],
}


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker) -> Iterator[str]:
    if not BIN.is_dir():
        pytest.fail("the clients are not installed: npm ci --prefix tests/clients (make test does it)")
    server = DaphneServer().start()
    try:
        yield server.url
    finally:
        server.close()


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=180, env={**os.environ, "NO_COLOR": "1"}
    )


@pytest.fixture
def document(live, make_token, tmp_path) -> Path:
    """The schema the live server serves, as a file."""
    answer = requests.get(
        f"{live}/api/openapi.json", headers={"Authorization": f"Bearer {make_token('read')}"}, timeout=30
    )
    assert answer.status_code == 200
    path = tmp_path / "openapi.json"
    path.write_text(answer.text)
    return path


def test_it_passes_redocly_recommended_lint_without_errors_or_warnings(document, transactional_db):
    lint = run(str(BIN / "redocly"), "lint", str(document), "--extends", "recommended", cwd=CLIENTS)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Your API description is valid" in lint.stdout + lint.stderr
    assert "warning" not in (lint.stdout + lint.stderr).lower().replace("deprecation warning", "")


def test_it_generates_a_strictly_typed_client_that_calls_every_area(
    live,
    document,
    tmp_path,
    make_token,
    transactional_db,
    seeded_policies,  # noqa: F811
):
    LogService.objects.create(name="api")
    build = tmp_path / "client"
    build.mkdir()
    (build / "node_modules").symlink_to(CLIENTS / "node_modules")
    (build / "package.json").write_text('{"type": "module"}')
    (build / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    (build / "openapi-client.ts").write_text((CLIENTS / "openapi-client.ts").read_text())

    generated = run(str(BIN / "openapi-typescript"), str(document), "-o", "api.ts", cwd=build)
    assert generated.returncode == 0, generated.stderr
    compiled = run(str(BIN / "tsc"), "-p", ".", cwd=build)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr

    config = {"baseUrl": live, "token": make_token("admin"), "mode": "normal", "service": "api"}
    ran = run("node", "out/openapi-client.js", json.dumps(config), cwd=build)
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)

    assert out["health"] == {"code": 200, "status": "ok"}
    assert out["tokens"]["code"] == 200 and set(out["tokens"]["statuses"]) == {"active"}
    assert out["task"]["code"] == 201 and out["task"]["status"] == "pending"
    assert out["events"]["code"] == 200 and "task_created" in out["events"]["types"]
    assert out["session"] == {"code": 201, "status": "idle", "messages": 0}
    assert out["missing"] == {"code": 404, "error": "not_found"}
    assert out["ingest"] == {"code": 200, "accepted": 2, "rejected": []}
    assert out["policies"]["code"] == 200 and "normal" in out["policies"]["modes"]
    assert out["executions"] == {"code": 200, "count": 0}
    assert out["repositories"] == {"code": 200, "count": 0}
