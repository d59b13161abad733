"""A worker's wake-up survives a lost LISTEN connection: it polls meanwhile, reopens the connection
with backoff, says so in the log, and is woken by NOTIFY again afterwards."""

import logging
import threading

import psycopg
import pytest

from juggernaut.db import listen_backoff, pg_connect_params
from juggernaut.engine import services
from juggernaut.engine.worker import Waker
from tests.conftest import needs_postgres


def _notify() -> None:
    with psycopg.connect(**pg_connect_params(), autocommit=True) as conn:
        conn.execute(f"NOTIFY {services.WAKE_CHANNEL}")


def _woken_by_notify(waker: Waker) -> bool:
    """Wait (up to a minute) in a thread, send one NOTIFY, and tell whether it was the NOTIFY that woke it."""
    before = dict(waker.wakes)
    ready = threading.Event()

    def wait() -> None:
        ready.set()
        waker.wait(60)

    thread = threading.Thread(target=wait)
    thread.start()
    ready.wait()
    while thread.is_alive():  # the thread may not be inside notifies() yet: a NOTIFY before it is lost
        _notify()
        thread.join(0.2)
    return waker.wakes["notify"] == before["notify"] + 1 and waker.wakes["timeout"] == before["timeout"]


@needs_postgres
@pytest.mark.django_db
def test_it_listens_again_after_the_server_drops_its_connection(caplog):
    waker = Waker()
    try:
        assert _woken_by_notify(waker)
        with psycopg.connect(**pg_connect_params(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [waker.listen.info.backend_pid])
        with caplog.at_level(logging.INFO, logger="juggernaut.engine.worker"):
            waker.wait(0.05)  # finds the connection gone, polls this once
            assert waker.listen is None
            assert _woken_by_notify(waker)  # reopened on the next wait
        messages = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("LISTEN connection lost") for m in messages)
        assert "LISTEN connection back; woken by NOTIFY again" in messages
    finally:
        waker.close()


def test_it_backs_off_up_to_ten_seconds_between_tries():
    waits, delay = [], 0.0
    for _ in range(7):
        delay = listen_backoff(delay)
        waits.append(delay)
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
