"""The Overview's chat line: what active runs do, a wait for approval as attention, the last stop."""

import re
from datetime import timedelta
from html import unescape

from django.test import Client

from chat import services
from chat.models import ChatRun
from chat.runs import run_close
from tests.chat.conftest import execute, send
from tests.fakes.openrouter import Reply, Tool


def chat_line(client: Client) -> tuple[str, str]:
    page = client.get("/").content.decode()
    line = re.search(r'<li id="hq-area-chat"[^>]*data-state="(\w+)"[^>]*>(.*?)</li>', page, re.S)
    return line.group(1), " ".join(unescape(re.sub(r"<[^>]+>", " ", line.group(2))).split())


def test_it_says_there_were_no_runs_yet(chat, alice):
    client = Client()
    client.force_login(alice)
    assert chat_line(client) == (
        "idle",
        "Chat No chat runs yet. Start a session on the Chat page",
    )


def test_it_says_what_an_active_run_does(chat, alice):
    run = send(chat)
    ChatRun.objects.filter(pk=run.pk).update(status="running", phase="streaming", started_at=run.created_at)
    client = Client()
    client.force_login(alice)
    state, text = chat_line(client)
    assert state == "busy" and f"Run {run.pk} streaming (" in text


def test_it_asks_for_the_approval_a_run_waits_for(chat, alice, fake_openrouter):
    fake_openrouter.script(Reply(tools=[Tool("retry_task", '{"task_id": 1}')], finish_reason="tool_calls"))
    run = execute(send(chat))
    client = Client()
    client.force_login(alice)
    state, text = chat_line(client)
    assert state == "warn" and f"Run {run.pk} waits for approval of retry_task" in text
    assert "1 needs you" in text and "Approve or deny the call on its session's page." in text
    page = client.get("/").content.decode()
    link = f'href="/chat/sessions/{run.session_id}/#chat-whyidle"'
    assert page.count(link) >= 2, "the Overview line and its activity row both open the session"
    assert client.get(f"/chat/sessions/{run.session_id}/").content.decode().count("Approve retry_task?") == 1


def test_it_shows_the_last_stop_and_what_lets_the_work_go_on(chat, alice):
    run = send(chat)
    run_close(run.pk, reason="model_error", detail="The model call failed: 502.")
    client = Client()
    client.force_login(alice)
    state, text = chat_line(client)
    assert state == "warn" and f"Idle. Run {run.pk} stopped 0 s ago: model error." in text
    assert "The model call failed: 502. Send the message again" in text
    services.run_stop(send(chat), user=alice)
    assert chat_line(client)[0] == "idle"  # an operator's own Stop needs nothing more


def test_it_warns_when_nothing_picks_a_queued_run_up(chat, alice, settings):
    run = send(chat)
    ChatRun.objects.filter(pk=run.pk).update(queued_at=run.queued_at - timedelta(minutes=2))
    settings.CHAT_RUNNER = "jobs"
    client = Client()
    client.force_login(alice)
    state, text = chat_line(client)
    assert state == "warn" and f"Run {run.pk} queued for 2 min" in text
    assert "is the jobs process (manage.py qcluster) running?" in text
