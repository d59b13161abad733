"""The env-driven settings file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from juggernaut.settings import database_from_url

ROOT = Path(__file__).resolve().parents[2]


def test_it_defaults_to_sqlite_in_wal_mode(tmp_path):
    db = database_from_url("", tmp_path)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == tmp_path / "juggernaut.sqlite3"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"] and db["OPTIONS"]["timeout"] > 0


def test_it_reads_postgres_urls(tmp_path):
    db = database_from_url("postgres://hq:p%40ss@db.internal:6543/juggernaut?sslmode=require", tmp_path)
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "hq",
        "p@ss",
        "db.internal",
        "6543",
        "juggernaut",
    )
    assert db["OPTIONS"] == {
        "sslmode": "require",
        "pool": {"min_size": 1, "max_size": 10, "timeout": 10.0, "reconnect_timeout": 10.0},
    }
    assert db["CONN_MAX_AGE"] == 0  # the pool hands connections back after each request
    # Django passes psycopg_pool's own check to the pool: a connection that died is never handed out.
    assert db["CONN_HEALTH_CHECKS"] is True


def test_it_reads_sqlite_urls(tmp_path):
    assert database_from_url("sqlite:////srv/hq/db.sqlite3", tmp_path)["NAME"] == Path("/srv/hq/db.sqlite3")


def test_it_refuses_unknown_database_schemes(tmp_path):
    with pytest.raises(ImproperlyConfigured):
        database_from_url("mysql://x/y", tmp_path)


def _manage(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    # The production settings module, as an operator runs it: none of the test suite's presets.
    preset = ("SECRET_KEY", "DEBUG", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    clean = {k: v for k, v in os.environ.items() if k not in preset}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean, "HQ_VAR_DIR": str(tmp_path), **env},
        timeout=120,
    )


@pytest.mark.process
def test_it_requires_a_secret_key_when_debug_is_off(tmp_path):
    result = _manage(tmp_path, "check", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


@pytest.mark.process
def test_it_generates_and_keeps_a_development_secret_key(tmp_path):
    assert _manage(tmp_path, "check", DEBUG="1").returncode == 0
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    assert _manage(tmp_path, "check", DEBUG="1").returncode == 0
    assert (tmp_path / "secret_key").read_text() == key


@pytest.mark.process
def test_it_creates_the_secret_key_private_from_the_start(tmp_path):
    # With chmod doing nothing, only a file created 0600 is private: one written with the usual
    # umask and tightened afterwards would be readable by everyone in between.
    code = "import os, pathlib; os.umask(0o022); pathlib.Path.chmod = lambda *a, **k: None; import juggernaut.settings"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HQ_VAR_DIR": str(tmp_path), "DEBUG": "1", "SECRET_KEY": ""},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert len((tmp_path / "secret_key").read_text()) >= 50


@pytest.mark.process
def test_it_passes_the_deploy_check_with_production_settings(tmp_path):
    result = _manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="x" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
        ALLOWED_HOSTS="hq.example.com",
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.process
def test_it_creates_var_and_the_sqlite_file_private(tmp_path):
    var = tmp_path / "var"
    result = _manage(var, "migrate", "--verbosity", "0", DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert var.stat().st_mode & 0o777 == 0o700
    for name in ["juggernaut.sqlite3", "secret_key"]:
        assert (var / name).stat().st_mode & 0o777 == 0o600, name
    # WAL files take the database's mode: nobody else can read sessions or token hashes from them.
    assert all(p.stat().st_mode & 0o077 == 0 for p in var.glob("juggernaut.sqlite3*"))
