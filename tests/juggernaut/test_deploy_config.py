"""The deployment configuration in the repository: Railway's config-as-code files, the Procfile that
other platforms read, and the lock file Railway's builder installs from."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("web", "jobs", "worker")


def service_config(name: str) -> dict:
    return json.loads((ROOT / "deploy" / "railway" / f"{name}.json").read_text())


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_it_runs_the_same_commands_from_the_procfile_and_on_railway():
    procs = procfile()
    deploy = {name: service_config(name)["deploy"] for name in SERVICES}
    assert {name: procs[name] for name in SERVICES} == {
        name: deploy[name]["startCommand"] for name in SERVICES
    }
    # Every service migrates before it starts (the lock lets one do the work), so no new code meets an
    # old schema whichever service Railway deploys first.
    assert all(deploy[name]["preDeployCommand"] == [procs["release"]] for name in SERVICES)


def test_it_builds_every_service_with_railpack_and_restarts_it():
    for name in SERVICES:
        config = service_config(name)
        assert config["$schema"] == "https://railway.com/railway.schema.json"
        assert config["build"]["builder"] == "RAILPACK"
        assert config["deploy"]["restartPolicyType"] in ("ON_FAILURE", "ALWAYS")
    web = service_config("web")
    assert web["deploy"]["healthcheckPath"] == "/api/health"
    assert "collectstatic" in web["build"]["buildCommand"]
    assert "$PORT" in web["deploy"]["startCommand"] and "--proxy-headers" in web["deploy"]["startCommand"]


@pytest.mark.process
def test_it_keeps_the_lock_file_railway_installs_from_in_step_with_pyproject():
    uv = Path(sys.executable).parent / "uv"
    result = subprocess.run(
        [str(uv), "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"uv.lock is stale: run `.venv/bin/uv lock` and commit it\n{result.stderr}"
