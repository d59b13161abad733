"""``manage.py engine_worker`` as a real process on the test database: runs tasks, stops cleanly."""

import signal
import time
from collections.abc import Callable

import pytest

from juggernaut.engine import services
from juggernaut.engine.models import Status, Task, Worker
from juggernaut.exits import EXIT_IDENTITY_TAKEN

pytestmark = pytest.mark.process  # each test starts manage.py engine_worker as a process


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_it_runs_tasks_and_gives_back_the_current_one_on_sigterm(start_worker):
    echo = services.task_create("say hi", kind="echo", payload={"hi": 1})
    noops = [services.task_create(f"noop {i}", kind="noop") for i in range(3)]
    proc = start_worker("--name", "builtin", "--poll", "0.2", "--grace", "1")

    wait_until(lambda: Task.objects.filter(status=Status.DONE).count() == 4, what="4 tasks done")
    assert Task.objects.get(pk=echo.pk).result == {"echo": {"hi": 1}}
    assert all(Task.objects.get(pk=t.pk).lease_owner.name == "builtin" for t in noops)

    nap = services.task_create("long nap", kind="sleep", payload={"seconds": 120})
    wait_until(lambda: Task.objects.get(pk=nap.pk).status == Status.RUNNING, what="the nap to start")
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)

    assert proc.returncode == 0, output
    assert "stopped" in output
    nap.refresh_from_db()
    assert nap.status == Status.PENDING and nap.attempts == 0 and nap.lease_owner is None
    assert Worker.objects.get(name="builtin").stopped_at is not None


@pytest.mark.django_db(transaction=True)
def test_it_defaults_to_every_handlers_capabilities(start_worker):
    nap = services.task_create("short nap", kind="sleep", payload={"seconds": 0.1})
    assert nap.required_capabilities == ["timer"]
    proc = start_worker("--name", "builtin", "--poll", "0.2")

    wait_until(lambda: Task.objects.get(pk=nap.pk).status == Status.DONE, what="the nap to finish")
    assert "timer" in Worker.objects.get(name="builtin").capabilities
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


@pytest.mark.django_db(transaction=True)
def test_it_exits_with_identity_taken_when_an_admin_takes_its_name(start_worker):
    proc = start_worker("--name", "builtin", "--poll", "0.2")
    wait_until(lambda: Worker.objects.filter(name="builtin", stopped_at=None).exists(), what="registration")
    services.worker_register("builtin", owner="token:7", takeover=True)  # what the admin's takeover does

    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_IDENTITY_TAKEN, output
    assert "run this worker under another name (--name)" in output
    # Started again under the same name, it is refused the same way, not crashed.
    again = start_worker("--name", "builtin")
    output, _ = again.communicate(timeout=30)
    assert again.returncode == EXIT_IDENTITY_TAKEN, output
    assert "belongs to another owner" in output and "Traceback" not in output
    assert Worker.objects.get(name="builtin").owner == "token:7"
