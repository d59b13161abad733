"""A switched-off feature app is installed but inert: no pages, API operations, tools, schedules,
self-heal checks, task source or Overview line; the engine cannot be switched off."""

import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.test import Client
from django_q.models import Schedule

from chat.tools_registry import tool_get, tool_schemas
from juggernaut import hq
from juggernaut.engine import services as engine
from juggernaut.errors import HQError
from juggernaut.healing import registry_load
from tests.conftest import ROOT, database_url_for_subprocess

# label: (its page, an API operation, its Overview area, its schedules' prefix)
FEATURES = {
    "chat": ("/chat/", "/api/chat/sessions", "chat", "hq:chat-"),
    "selfheal": ("/selfheal/", "/api/self-heal/executions", "selfheal", "hq:selfheal-"),
    "logscrawler": ("/logs/", "/api/logs/alerts", "logs", "hq:logs-"),
    "codehealth": ("/codehealth/", "/api/codehealth/repositories", "codehealth", "hq:codehealth-"),
    "routing": ("/routing/", "/api/routing/models", "routing", "hq:routing-"),
}
# Chat cannot work without routing: switching routing off switches chat off too.
ALSO_OFF = {"routing": ["chat"]}
# A run that is not alice's: its topic is hidden from her, also while the chat is switched off.
STRANGERS_RUN = "/api/events/chat.run.424242"
ALL_PATHS = [p for page, api, _, _ in FEATURES.values() for p in (page, api)] + [STRANGERS_RUN]


_probed: dict[str, dict] = {}


def probe_all_on() -> dict:
    """The probe with every switch on, once per test process (it is the same for every feature)."""
    if "on" not in _probed:
        _probed["on"] = probe({})
    return _probed["on"]


def probe(switches: dict[str, str]) -> dict:
    # Self-heal's auto-heal schedule exists only with an interval.
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "SELFHEAL_AUTO_MINUTES": "5"}
    env.update(switches)
    out = subprocess.run(
        [sys.executable, "-m", "tests.juggernaut.switch_probe", "alice", *ALL_PATHS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.process
@pytest.mark.parametrize("label", list(FEATURES))
def test_it_leaves_nothing_of_a_switched_off_app(label, alice, transactional_db):
    on = probe_all_on()
    off = probe({f"{label.upper()}_ENABLED": "0"})
    for gone in [label, *ALSO_OFF.get(label, [])]:
        page, api, area, schedule = FEATURES[gone]
        assert on["status"][page] == 200 and on["status"][api] == 200
        assert off["status"][page] == 404 and off["status"][api] == 404
        assert area in on["areas"] and area not in off["areas"]
        assert page in on["nav"] and page not in off["nav"]
        assert any(p.startswith(api.rsplit("/", 1)[0] + "/") for p in on["api"])
        assert not any(p.startswith(api.rsplit("/", 1)[0] + "/") for p in off["api"])
        assert any(s.startswith(schedule) for s in on["schedules"])
        assert not any(s.startswith(schedule) for s in off["schedules"])
        assert gone not in off["tools"] and gone not in off["checks"] and gone not in off["actions"]
        assert gone in on["tools"] or gone == "chat"  # the chat offers other apps' tools, none of its own
        assert gone in on["checks"] or gone in ("chat", "selfheal")  # these two declare no checks
    assert off["overview"] == 200 and "engine" in off["areas"] and "hq:engine-tick" in off["schedules"]
    assert on["status"][STRANGERS_RUN] == off["status"][STRANGERS_RUN] == 404
    still_on = [other for other in FEATURES if other not in [label, *ALSO_OFF.get(label, [])]]
    for other in still_on:
        assert off["status"][FEATURES[other][0]] == 200 and FEATURES[other][2] in off["areas"]
    assert set(on["tools"]) - set(off["tools"]) <= {label, *ALSO_OFF.get(label, [])}


@pytest.mark.process
def test_it_refuses_to_start_with_the_engine_switched_off():
    env = {**os.environ, "ENGINE_ENABLED": "0"}
    out = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "the engine cannot be switched off" in out.stderr


@pytest.mark.django_db
def test_it_hides_a_switched_off_app_from_the_overview_tools_checks_and_schedules(settings, alice_client):
    call_command("sync_schedules")
    assert "codehealth" in hq.AREAS and tool_get("codehealth_repositories") is not None
    offered = {t["function"]["name"] for t in tool_schemas()}
    settings.FEATURE_APPS = {**settings.FEATURE_APPS, "codehealth": False}
    assert "codehealth" not in hq.AREAS and hq.AREAS.get("codehealth") is None
    assert 'id="hq-area-codehealth"' not in alice_client.get("/").content.decode()
    assert tool_get("codehealth_repositories") is None
    assert {t["function"]["name"] for t in tool_schemas()} < offered
    checks, _ = registry_load()
    assert not [c for c in checks.values() if c.func.__module__.startswith("codehealth.")]
    call_command("sync_schedules")
    assert not Schedule.objects.filter(name__startswith="hq:codehealth-").exists()
    assert Schedule.objects.filter(name="hq:engine-tick").exists()


@pytest.mark.django_db
def test_it_refuses_tasks_from_an_unknown_or_switched_off_source(settings, bearer):
    answer = Client().post(
        "/api/engine/tasks",
        {"title": "x", "kind": "noop", "source": "nope"},
        content_type="application/json",
        **bearer("write"),
    )
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "bad_source"
    assert engine.task_create("From logs", kind="noop", source="logs").source == "logs"
    settings.FEATURE_APPS = {**settings.FEATURE_APPS, "logscrawler": False}
    with pytest.raises(HQError, match="source must be one of"):
        engine.task_create("From logs", kind="noop", source="logs")
