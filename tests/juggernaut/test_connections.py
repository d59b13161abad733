"""Bounded database connections: a request that finds the pool empty waits its turn, then gets 503
with Retry-After in the error shape, never a 500 (and never more connections than the pool holds)."""

import threading
import time

import psycopg
import pytest
import requests

from tests.conftest import DaphneServer, database_url_for_subprocess, needs_postgres

pytestmark = pytest.mark.process  # each test starts a daphne server


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_it_answers_503_with_retry_after_when_the_pool_stays_empty(make_token):
    raw = make_token("read")
    server = DaphneServer(
        env={"DATABASE_POOL_MAX_SIZE": "1", "DATABASE_POOL_MIN_SIZE": "1", "DATABASE_POOL_TIMEOUT": "0.5"}
    ).start()
    headers = {"Authorization": f"Bearer {raw}"}
    first: list[requests.Response] = []
    try:
        with psycopg.connect(database_url_for_subprocess()) as blocker:
            # Hold the token table, so the first request sits on the pool's only connection.
            blocker.execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
            holder = threading.Thread(
                target=lambda: first.append(
                    requests.get(server.url + "/api/engine/tasks", headers=headers, timeout=30)
                )
            )
            holder.start()
            time.sleep(1.0)
            started = time.monotonic()
            refused = requests.get(server.url + "/api/engine/status", headers=headers, timeout=30)
            waited = time.monotonic() - started
            blocker.rollback()
        holder.join(timeout=30)
    finally:
        server.close()
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "2"
    assert refused.json()["error"]["code"] == "database_busy"
    assert waited >= 0.4  # it waited for the pool before giving up
    assert first[0].status_code == 200  # the request holding the connection finished normally
