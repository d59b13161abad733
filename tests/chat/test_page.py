"""The chat page: sessions list, a session's live view rendered from the database, its forms, bad
input, sanitised Markdown, and the websocket fragments for a run's events."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from chat import live
from chat.models import ChatMessage, ChatRun, Role
from juggernaut import hq
from juggernaut.models import Event
from tests.chat.conftest import events, execute, send
from tests.fakes.openrouter import Reply, Tool


@pytest.fixture
def client(alice) -> Client:
    c = Client()
    c.force_login(alice)
    return c


def test_the_index_lists_sessions_and_creates_one_with_a_mode(client, chat):
    html = client.get("/chat/").content.decode()
    assert "Ops" in html and 'value="normal"' in html
    response = client.post("/chat/sessions/", {"title": "Second", "mode": "normal"})
    assert response.status_code == 302 and response.url.startswith("/chat/sessions/")
    assert "Second" in client.get(response.url).content.decode()


def test_a_session_page_after_a_run_shows_messages_timeline_budget_and_why_idle(
    client, chat, fake_openrouter, add_tool
):
    @add_tool
    def failing_services(window: str = "1h") -> dict:
        """Services with errors."""
        return {"services": ["api"], "window": window}

    fake_openrouter.script(
        Reply(tools=[Tool("failing_services", '{"window": "24h"}', id="call_a")], finish_reason="tool_calls"),
        Reply(
            text="The **api** service is failing:\n\n- one\n- two\n\n```\ncode here\n```",
            cost=Decimal("0.0002"),
        ),
    )
    run = execute(send(chat))
    assert run.stop_reason == "completed"
    first = client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    assert "<strong>api</strong>" in first and "<li>one</li>" in first and "<code>code here" in first
    assert 'id="chat-tool-' in first and "failing_services" in first and "24h" in first  # the timeline
    assert "Steps" in first and "Wall time" in first and "Cost" in first and "Retries" in first
    assert "Why idle" in first and "completed" in first and "Send another message to go on." in first
    # A reload is the same page: everything comes from the database.
    again = client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    volatile = r"<time [^>]*>[^<]*</time>|csrfmiddlewaretoken\" value=\"[^\"]*|X-CSRFToken\": \"[^\"]*"
    assert re.sub(volatile, "", first) == re.sub(volatile, "", again)


def test_the_guardrails_panel_counts_the_rules_that_fired(client, chat, fake_openrouter, add_tool):
    def restart(service: str) -> str:
        """Restarts a service."""
        raise RuntimeError(f"deploy of {service} not found")

    add_tool(restart)
    assert "No rule has fired" in client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    fake_openrouter.script(
        *[
            Reply(tools=[Tool("restart", '{"service": "api"}', id=f"c{i}")], finish_reason="tool_calls")
            for i in range(4)
        ]
    )
    run = execute(send(chat))
    html = client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    panel = html[html.index('id="chat-guardrails"') :]
    panel = panel[: panel.index("</section>")]
    assert f"1 steer, 1 block in run {run.pk}." in panel
    assert re.search(r"<strong>repeated_failure</strong> <span class=\"badge\">stop</span>", panel), panel
    assert "needs_tools" not in panel and "seen" not in panel, "the rules, not the run's internal state"


def test_a_script_in_a_message_is_never_html(client, chat):
    run = ChatRun.objects.create(
        session=chat, mode="normal", status="stopped", stop_reason="completed", phase="done"
    )
    ChatMessage.objects.create(session=chat, run=run, role=Role.USER, content="<script>alert(1)</script>")
    ChatMessage.objects.create(
        session=chat,
        run=run,
        role=Role.ASSISTANT,
        content="<script>alert(2)</script> [x](javascript:alert(3)) <img src=x onerror=alert(4)>",
    )
    html = client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    assert "<script>alert" not in html and 'href="javascript' not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)" in html


def test_sending_a_message_starts_a_run_and_a_second_is_refused_clearly(client, chat):
    response = client.post(f"/chat/sessions/{chat.pk}/messages/", {"content": "What is failing?"})
    assert response.status_code == 302
    run = ChatRun.objects.get(session=chat)
    page = client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    assert f"Run {run.pk} is active: a new message is refused" in page and 'id="chat-stop"' in page
    busy = client.post(f"/chat/sessions/{chat.pk}/messages/", {"content": "again"})
    assert busy.status_code == 409 and "This session is busy" in busy.content.decode()
    stopped = client.post(f"/chat/runs/{run.pk}/stop/")
    assert stopped.status_code == 302
    run.refresh_from_db()
    assert run.stop_reason == "cancelled"
    assert "Stopped by operator:alice" in client.get(f"/chat/sessions/{chat.pk}/").content.decode()


def test_why_idle_says_when_the_next_scheduled_work_runs(client, chat):
    from django_q.models import Schedule

    from juggernaut import schedules

    Schedule.objects.all().delete()
    idle = client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    assert "No scheduled work is set up." in idle and "Run manage.py sync_schedules." in idle
    schedules.schedules_sync()
    due = schedules.next_due()
    page = client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    assert f"Next scheduled work: {due.name.removeprefix('hq:')} at " in page
    # Its time passes and nothing runs it: the page no longer promises it as "next".
    from datetime import timedelta

    from django.utils import timezone

    Schedule.objects.filter(name__startswith="hq:").update(next_run=timezone.now() - timedelta(minutes=5))
    late = schedules.next_due()
    page = client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    assert "Next scheduled work" not in page
    assert f"Scheduled work is late: {late.name.removeprefix('hq:')} was due at " in page
    assert "Is the jobs process (manage.py qcluster) running?" in page


def test_the_mode_selector_switches_the_next_runs_mode(client, chat):
    page = client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    assert 'id="chat-mode"' in page and '<option value="ops"' in page
    assert client.post(f"/chat/sessions/{chat.pk}/mode/", {"mode": "ops"}).status_code == 302
    chat.refresh_from_db()
    assert chat.mode == "ops"
    assert re.search(
        r'<option value="ops" selected>', client.get(f"/chat/sessions/{chat.pk}/").content.decode()
    )
    assert send(chat, "which mode?").mode == "ops", "the next run is in the new mode"
    switched = client.post(
        f"/chat/sessions/{chat.pk}/mode/", {"mode": "code"}, headers={"HX-Request": "true"}
    )
    assert re.search(
        r'<span class="badge" id="chat-modebadge" hx-swap-oob="true"[^>]*>code</span>',
        switched.content.decode(),
    ), "the badge by the title changes with the switch, no reload"
    assert client.post(f"/chat/sessions/{chat.pk}/mode/", {"mode": "no-such-mode"}).status_code == 422
    chat.refresh_from_db()
    assert chat.mode == "code", "a refused switch changes nothing"


@pytest.mark.parametrize(
    "path,data,status",
    [
        ("/chat/sessions/{s}/messages/", {"content": "   "}, 422),
        ("/chat/sessions/999999/messages/", {"content": "hi"}, 404),
        ("/chat/sessions/", {"mode": "no-such-mode"}, 422),
        ("/chat/runs/999999/stop/", {}, 404),
        ("/chat/runs/999999/approve/", {"approve": "1", "tool_call_id": "x"}, 404),
        ("/chat/runs/999999/approve/", {"approve": "maybe", "tool_call_id": "x"}, 404),
    ],
)
def test_bad_input_gets_a_4xx_page_never_a_500(client, chat, path, data, status):
    response = client.post(path.format(s=chat.pk), data)
    assert response.status_code == status, response.content[:300]


def test_a_nul_in_a_message_changes_nothing_and_says_why(client, chat):
    response = client.post(
        f"/chat/sessions/{chat.pk}/messages/",
        {"content": "a\x00b"},
        HTTP_REFERER=f"http://testserver/chat/sessions/{chat.pk}/",
    )
    assert response.status_code == 302 and response.url.endswith(f"/chat/sessions/{chat.pk}/")
    assert not ChatRun.objects.filter(session=chat).exists()


def test_another_operators_session_does_not_exist_for_them(chat, carol):
    other = Client()
    other.force_login(carol)
    assert other.get(f"/chat/sessions/{chat.pk}/").status_code == 404
    assert other.post(f"/chat/sessions/{chat.pk}/messages/", {"content": "hi"}).status_code == 404
    assert "Ops" not in other.get("/chat/").content.decode()
    assert hq.page_topics(carol, live.page_name(chat.pk)) == []


def test_without_a_key_the_page_says_how_to_configure_one(client, chat, settings):
    settings.OPENROUTER_API_KEY = ""
    settings.OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
    for path in ("/chat/", f"/chat/sessions/{chat.pk}/"):
        html = client.get(path).content.decode()
        assert "Set OPENROUTER_API_KEY in the environment" in html


def test_token_events_append_and_other_events_redraw_the_session(chat, alice, fake_openrouter):
    fake_openrouter.script(Reply(text="Hello there"))
    run = execute(send(chat))
    page = live.page_name(chat.pk)
    assert hq.page_topics(alice, page) == [run.topic]
    envs = [e.envelope() for e in events(run)]
    tokens = [e for e in envs if e["type"] == "token"]
    assert tokens
    html = hq.render_events(tokens, page)
    assert f'hx-swap-oob="beforeend:#chat-stream-{run.pk}"' in html
    full = hq.render_events(envs, page)
    for frag in live.FRAGMENTS:
        assert f'id="chat-{frag}"' in full
    assert hq.render_events(envs, live.page_name(chat.pk + 1)) == ""  # another session's page: nothing
    assert Event.objects.filter(topic=run.topic, type="stop_reason").count() == 1


def test_the_overview_chat_line_links_to_the_chat_page(client, chat):
    assert hq.AREAS["chat"].url == "/chat/"
    assert 'href="/chat/"' in client.get("/").content.decode()
