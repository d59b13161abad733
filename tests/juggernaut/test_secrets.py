"""Secrets never reach a page or a log line: debug pages hide settings, environment values and
variables that hold secrets, and no Authorization value or ?token= reaches any log (access log too)."""

import base64
import logging
import os
import socket
import sys
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.test import Client, override_settings

from juggernaut.engine import api as engine_api
from juggernaut.models import ApiToken
from juggernaut.redaction import RedactingLogFilter
from tests.conftest import DaphneServer

# Built, not written out: the debug page quotes this file's source around the failing frame.
NEEDLES = [
    "fake-db-" + "pass-1234",
    "sk-or-fake-" + "key-5678",
    "fake-admin-" + "pass-9012",
    "fake-hook-" + "pass-3456",
]
FAKE_SECRETS = {
    "DATABASE_URL": f"postgres://hq:{NEEDLES[0]}@db.internal:5432/hq",
    "OPENROUTER_API_KEY": NEEDLES[1],
    "HQ_ADMIN_PASSWORD": NEEDLES[2],
    "RAILWAY_LOG_WEBHOOK": f"https://hook:{NEEDLES[3]}@hooks.example/x",
}
FAKE_TOKEN = "jhq_" + "faketokenvalue0123456789abcdef"


def failing_with_secrets(*args, **kwargs):
    database_url = settings.DATABASE_URL
    api_key = settings.OPENROUTER_API_KEY
    webhook = settings.RAILWAY_LOG_WEBHOOK
    raise ConnectionError(f"cannot reach {database_url} or {webhook} (key {api_key[:3]}…)")


def assert_clean(text: str, *extra: str) -> None:
    for needle in [*NEEDLES, FAKE_TOKEN, *extra]:
        assert needle not in text, needle


@pytest.mark.django_db
def test_it_hides_secrets_on_debug_pages_and_in_logs(alice, make_token, monkeypatch, capsys):
    # The configured console handler (with its redacting filter) writes where this test reads.
    console = [
        h for h in logging.getLogger().handlers if any(isinstance(f, RedactingLogFilter) for f in h.filters)
    ]
    assert console
    for handler in console:
        monkeypatch.setattr(handler, "stream", sys.stderr)
    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(name, value)
    raw = make_token("read")
    monkeypatch.setattr("juggernaut.views.hq.areas_context", failing_with_secrets)
    monkeypatch.setattr(engine_api.services, "engine_snapshot", failing_with_secrets)
    with override_settings(DEBUG=True, **FAKE_SECRETS):
        browser = Client(raise_request_exception=False, HTTP_X_API_KEY=FAKE_TOKEN)
        browser.force_login(alice)
        html = browser.get(f"/?token={FAKE_TOKEN}&access_token={FAKE_TOKEN}")
        missing = browser.get(f"/nowhere/?token={FAKE_TOKEN}")
        program = Client(raise_request_exception=False)
        api = program.get("/api/engine/status", HTTP_AUTHORIZATION=f"Bearer {raw}")
        basic = base64.b64encode(f"x:{FAKE_TOKEN}".encode()).decode()
        odd_auth = [
            program.get("/api/engine/status", HTTP_AUTHORIZATION=f"Basic {FAKE_TOKEN}"),
            program.get("/api/engine/status", HTTP_AUTHORIZATION=f"Basic {basic}"),
            program.get(f"/api/engine/status?token={FAKE_TOKEN}", HTTP_AUTHORIZATION=f"Token {FAKE_TOKEN}"),
        ]
    page = html.content.decode()
    assert html.status_code == 500 and "Traceback" in page and "Settings" in page  # the real debug page
    assert "db.internal" in page  # where it failed is still said, just not the password
    assert_clean(page, raw, basic)
    assert missing.status_code == 404 and "Using the URLconf" in missing.content.decode()  # debug 404
    assert_clean(missing.content.decode())
    assert api.status_code == 500 and api.json()["error"]["code"] == "internal_error"
    assert_clean(api.content.decode(), raw)
    assert all(r.status_code == 401 for r in odd_auth)
    out, err = capsys.readouterr()
    logged = out + err
    assert "cannot reach" in logged and "Unexpected auth" in logged  # the errors were logged…
    assert_clean(logged, raw, basic)  # …without a secret


def ws_handshake(url: str, path: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        return sock.recv(200)


@pytest.mark.process  # starts a daphne server
@pytest.mark.django_db(transaction=True)
def test_it_keeps_tokens_out_of_the_servers_logs_and_access_log(alice):
    token, raw = ApiToken.generate(name="logs", user=alice, scopes=["read"], days=1)
    token.save()
    server = DaphneServer(env={"HQ_ADMIN_PASSWORD": FAKE_SECRETS["HQ_ADMIN_PASSWORD"]}).start()
    try:
        for path in [f"/api/engine/tasks?token={raw}", f"/api/events/hq?limit=1&token={FAKE_TOKEN}"]:
            requests.get(server.url + path, timeout=10)
        requests.get(server.url + "/api/engine/tasks", headers={"Authorization": f"Basic {raw}"}, timeout=10)
        requests.get(server.url + "/api/engine/tasks", headers={"Authorization": f"Bearer {raw}"}, timeout=10)
        requests.get(server.url + "/api/nowhere", headers={"Authorization": f"Token {raw}"}, timeout=10)
        assert b" 101 " in ws_handshake(server.url, f"/ws/events/?token={raw}")
    finally:
        server.stop()
        log = (Path(server.var_dir) / "daphne.log").read_text()
        server.close()
    assert "GET /api/engine/tasks?token=[redacted]" in log  # the access log did record the request
    assert "Unexpected auth" in log
    assert_clean(log, raw)
