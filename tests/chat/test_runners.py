"""Where runs execute: a django-q2 job (the default) or the engine's ``chat_run`` task, started by the
message's commit, never by the request itself."""

from django_q.conf import Conf

from chat.models import ChatRun
from juggernaut.engine.models import Status, Task
from juggernaut.engine.worker import WorkerLoop
from tests.chat.conftest import send, stop_of
from tests.fakes.openrouter import Reply


def test_it_runs_a_message_as_a_jobs_task_after_commit(chat, fake_openrouter, settings, monkeypatch):
    settings.CHAT_RUNNER = "jobs"
    monkeypatch.setattr(Conf, "SYNC", True)  # the cluster's work, done in this process
    fake_openrouter.script(Reply(text="From the jobs cluster."))
    run = send(chat)
    run.refresh_from_db()
    assert stop_of(run)["reason"] == "completed"
    assert chat.messages.last().content == "From the jobs cluster."


def test_it_runs_a_message_as_an_engine_task_when_so_configured(chat, fake_openrouter, settings):
    settings.CHAT_RUNNER = "engine"
    fake_openrouter.script(Reply(text="From the engine."))
    run = send(chat)
    task = Task.objects.get(kind="chat_run")
    assert (task.payload, task.source, task.status, task.created_by) == (
        {"run_id": run.pk},
        "chat",
        Status.PENDING,
        "operator:alice",
    )
    assert ChatRun.objects.get(pk=run.pk).status == "queued"  # the request only queued it
    WorkerLoop("builtin", capabilities=[], poll_seconds=0.1).run(exit_when_idle=True)
    task.refresh_from_db()
    assert task.status == Status.DONE and task.result == {"run_id": run.pk, "outcome": "stopped"}
    assert stop_of(ChatRun.objects.get(pk=run.pk))["reason"] == "completed"
