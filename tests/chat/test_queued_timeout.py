"""A run nothing picks up (its job failed on a dead connection, or was lost with the jobs process) is
handed to the runner once more after CHAT_QUEUED_TIMEOUT_SECONDS, then closed with a stop reason in
words, so its session takes messages again instead of answering 409 run_active forever."""

from datetime import timedelta

import pytest

from chat import services
from chat.errors import ChatError
from chat.models import ChatRun
from juggernaut.engine.models import Task
from tests.chat.conftest import execute, send, sequence, stop_of
from tests.fakes.openrouter import Reply


def test_it_hands_a_run_over_once_more_then_closes_it(chat, settings):
    settings.CHAT_RUNNER = "engine"
    settings.CHAT_QUEUED_TIMEOUT_SECONDS = 120
    run = send(chat)
    queued = run.queued_at
    assert Task.objects.filter(kind="chat_run").count() == 1

    assert services.runs_sweep(now=queued + timedelta(seconds=100)) == []  # not waited long enough
    assert Task.objects.filter(kind="chat_run").count() == 1

    retried_at = queued + timedelta(seconds=121)
    assert services.runs_sweep(now=retried_at) == []  # handed over again, not closed
    run.refresh_from_db()
    assert (run.status, run.requeues, run.queued_at) == ("queued", 1, retried_at)
    assert Task.objects.filter(kind="chat_run").count() == 2  # a second job for the same run
    assert Task.objects.filter(kind="chat_run").latest("id").payload == {"run_id": run.pk}
    with pytest.raises(ChatError) as busy:
        send(chat)
    assert busy.value.code == "run_active"

    assert services.runs_sweep(now=retried_at + timedelta(seconds=100)) == []  # the retry has its own time
    assert services.runs_sweep(now=retried_at + timedelta(seconds=121)) == [run.pk]
    assert services.runs_sweep(now=retried_at + timedelta(seconds=300)) == []  # closed exactly once
    assert Task.objects.filter(kind="chat_run").count() == 2  # never a third time
    run.refresh_from_db()
    stop = stop_of(run)
    assert (run.status, stop["reason"]) == ("stopped", "interrupted")
    assert stop["detail"].startswith("No process picked this run up within 120 s")
    assert "then resume the run" in stop["action"]
    assert sequence(run) == ["status:queued", "stop_reason"]  # the retry said so, then the one stop
    assert send(chat).status == "queued"  # the session takes messages again


def test_it_completes_a_run_handed_over_again(chat, fake_openrouter, settings):
    settings.CHAT_QUEUED_TIMEOUT_SECONDS = 30
    run = send(chat)  # the manual runner: nothing picks it up
    assert services.runs_sweep(now=run.queued_at + timedelta(seconds=31)) == []
    fake_openrouter.script(Reply(text="Here is the answer."))
    run = execute(ChatRun.objects.get(pk=run.pk))  # what the second job does
    assert (run.status, run.stop_reason) == ("stopped", "completed")
    assert services.runs_sweep(now=run.queued_at + timedelta(seconds=300)) == []
