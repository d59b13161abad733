"""The production start, as Railway runs it: each service's build, pre-deploy and start commands read
from deploy/railway/*.json and run exactly as written, with production settings (DEBUG off, a real
SECRET_KEY, a fresh PostgreSQL database, PORT, HQ_BEHIND_PROXY) and requests that arrive the way
Railway's edge forwards them (its public domain as Host, X-Forwarded-Proto: https)."""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
import websockets.sync.client

from tests.conftest import CLOSED_URL, free_port, needs_postgres
from tests.juggernaut.test_deploy_config import service_config

pytestmark = [pytest.mark.process, needs_postgres]

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "hq-test.up.railway.app"
PASSWORD = "a-long-operator-password-for-production"


@contextmanager
def fresh_database():
    """A database of its own on the suite's PostgreSQL server, dropped afterwards."""
    url = urlsplit(os.environ["DATABASE_URL"])
    name = f"jhq_prod_{secrets.token_hex(4)}"
    admin = urlunsplit(url._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(url._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def production_env(database_url: str, var_dir: Path, port: int) -> dict[str, str]:
    """What a Railway service sees: our variables and Railway's own, none of the test suite's presets."""
    preset = ("SECRET_KEY", "DEBUG", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "ALLOWED_HOSTS")
    env = {k: v for k, v in os.environ.items() if k not in preset}
    env.update(
        # `python` is this checkout's interpreter, as Railpack puts its virtualenv first on PATH.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=database_url,
        PORT=str(port),
        HQ_BEHIND_PROXY="1",
        RAILWAY_PUBLIC_DOMAIN=DOMAIN,
        HQ_VAR_DIR=str(var_dir),
        # Nothing leaves this machine: every outside service is a closed port.
        GITHUB_API_URL=CLOSED_URL,
        CODEHEALTH_OSV_URL=CLOSED_URL,
        CODEHEALTH_REGISTRY_LOOKUPS="0",
        OPENROUTER_BASE_URL=CLOSED_URL,
        RAILWAY_API_URL=CLOSED_URL,
        ENGINE_HEARTBEAT_SECONDS="2",
    )
    return env


def run(command: str, env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    """A configured command, through a shell as the platform runs it (``$PORT`` expands there)."""
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def start(command: str, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=40)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def edge_headers(**extra: str) -> dict[str, str]:
    """A request as Railway's edge forwards it: TLS ended there, the public domain as Host."""
    return {"Host": DOMAIN, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", **extra}


def test_it_migrates_from_two_pre_deploys_at_once_and_again_without_harm(tmp_path):
    [predeploy] = service_config("web")["deploy"]["preDeployCommand"]
    with fresh_database() as database_url:
        env = production_env(database_url, tmp_path, free_port())
        first, second = (
            subprocess.Popen(
                ["/bin/sh", "-c", predeploy],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        )
        outputs = [proc.communicate(timeout=240)[0] for proc in (first, second)]
        assert (first.returncode, second.returncode) == (0, 0), "\n".join(outputs)
        # One applied the migrations; the other waited for the lock and found nothing left to do.
        assert sum("Applying " in out for out in outputs) == 1, "\n".join(outputs)
        again = run(predeploy, env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "No migrations to apply" in again.stdout and "Applying " not in again.stdout
        with psycopg.connect(database_url) as conn:
            applied = conn.execute("SELECT count(*), count(DISTINCT (app, name)) FROM django_migrations")
            total, distinct = applied.fetchone()
            schedules = conn.execute("SELECT count(*) FROM django_q_schedule WHERE name LIKE 'hq:%%'")
            assert total == distinct > 0 and schedules.fetchone()[0] > 0


def test_it_builds_starts_and_serves_the_three_services_behind_railways_edge(tmp_path):
    web, jobs, worker = (service_config(name) for name in ("web", "jobs", "worker"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with fresh_database() as database_url:
        env = production_env(database_url, tmp_path / "var", port)
        build = run(web["build"]["buildCommand"], env)
        assert build.returncode == 0, build.stderr
        [predeploy] = web["deploy"]["preDeployCommand"]
        assert run(predeploy, env).returncode == 0
        # The first operator, the way docs/deploy.md creates one (railway ssh into the web service).
        operator = run(
            "python manage.py ensure_operator", env | {"HQ_ADMIN_USER": "ops", "HQ_ADMIN_PASSWORD": PASSWORD}
        )
        assert operator.returncode == 0, operator.stderr

        procs = {
            name: start(config["deploy"]["startCommand"], env, tmp_path / f"{name}.log")
            for name, config in (("web", web), ("jobs", jobs), ("worker", worker))
        }
        try:
            # Railway's healthcheck asks with its own host name, over plain HTTP.
            health = wait_for(
                lambda: requests.get(
                    url + web["deploy"]["healthcheckPath"],
                    headers={"Host": "healthcheck.railway.app"},
                    timeout=2,
                ),
                procs["web"],
            )
            assert health.json()["database"] == "ok"

            # Plain HTTP from the edge is sent to HTTPS; a host that is not ours is refused.
            plain = requests.get(url + "/login/", headers={"Host": DOMAIN}, allow_redirects=False, timeout=5)
            assert plain.status_code == 301 and plain.headers["Location"] == f"https://{DOMAIN}/login/"
            assert (
                requests.get(
                    url + "/login/", headers=edge_headers(Host="evil.example"), timeout=5
                ).status_code
                == 400
            )

            cookies = sign_in(url)
            overview = requests.get(
                url + "/", headers=edge_headers(Cookie=cookie_header(cookies)), timeout=10
            )
            assert overview.status_code == 200 and "Overview" in overview.text

            # Static files: collected at build time, named by content hash, cached for good.
            stylesheet = re.search(r'href="(/static/[^"]+\.css)"', overview.text).group(1)
            assert re.search(r"\.[0-9a-f]{12}\.css$", stylesheet), stylesheet
            static = requests.get(url + stylesheet, headers=edge_headers(), timeout=5)
            assert static.status_code == 200
            assert "max-age=315360000" in static.headers["Cache-Control"]
            assert "immutable" in static.headers["Cache-Control"]

            # A websocket from the HQ's page: through the proxy headers, with the session, from our origin.
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
                websockets.sync.client.connect(
                    f"ws://{DOMAIN}/ws/events/",
                    sock=sock,
                    origin=f"https://{DOMAIN}",
                    additional_headers={"Cookie": cookie_header(cookies), "X-Forwarded-Proto": "https"},
                    open_timeout=10,
                ) as ws,
            ):
                ws.send(json.dumps({"subscribe": ["hq"]}))
                assert json.loads(ws.recv(timeout=10)) == {"subscribed": ["hq"]}

            # Each service's health in the HQ itself: the worker registered and alive, the jobs
            # cluster's autonomy loop ticking.
            api = {"Cookie": cookie_header(cookies)}
            workers = wait_for(
                lambda: _nonempty(
                    requests.get(url + "/api/engine/workers", headers=edge_headers(**api), timeout=5)
                ),
                procs["worker"],
            )
            assert [w["live"] for w in workers.json()] == [True]
            status = wait_for(
                lambda: _ticked(
                    requests.get(url + "/api/engine/status", headers=edge_headers(**api), timeout=5)
                ),
                procs["jobs"],
                timeout=120,
            )
            assert status.json()["last_tick_at"] is not None

            check = run("python manage.py check --deploy --fail-level WARNING", env)
            assert check.returncode == 0, check.stdout + check.stderr
        finally:
            for proc in procs.values():
                stop(proc)
        assert procs["web"].returncode is not None


def sign_in(url: str) -> dict[str, str]:
    """The sign-in form, with its CSRF token, over the edge. The cookies are Secure, so a client on
    plain HTTP to the origin carries them by hand, as the browser does over HTTPS to the edge."""
    form = requests.get(url + "/login/", headers=edge_headers(), timeout=10)
    assert form.status_code == 200
    cookies = dict(form.cookies)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    answer = requests.post(
        url + "/login/",
        data={"username": "ops", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers=edge_headers(
            Cookie=cookie_header(cookies), Origin=f"https://{DOMAIN}", Referer=f"https://{DOMAIN}/login/"
        ),
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text[:500]
    assert "secure" in answer.headers["Set-Cookie"].lower()
    cookies.update(dict(answer.cookies))
    assert "sessionid" in cookies
    return cookies


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _nonempty(response: requests.Response) -> requests.Response:
    return response if response.status_code == 200 and response.json() else None


def _ticked(response: requests.Response) -> requests.Response:
    return response if response.status_code == 200 and response.json().get("last_tick_at") else None


def wait_for(probe, proc: subprocess.Popen, timeout: float = 90):
    """The probe's first truthy answer; fails at once if the process it waits on has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        try:
            answer = probe()
            if answer is not None and getattr(answer, "status_code", 200) == 200:
                return answer
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no answer within {timeout} s")
