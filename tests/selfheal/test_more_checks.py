"""The errors and GitHub checks, the investigate repair, the chat tool and the selfheal event stream."""

from datetime import timedelta

import pytest
from django.utils import timezone

from codehealth.models import Repository
from juggernaut.models import Event
from juggernaut.tools import acting_as, tool_spec
from logscrawler.models import ErrorFingerprint, ErrorMinute, LogService
from selfheal import services, tools
from tests.conftest import CLOSED_URL

pytestmark = pytest.mark.django_db(transaction=True)


def fingerprint(status="acknowledged") -> ErrorFingerprint:
    service = LogService.objects.create(name="api")
    now = timezone.now()
    return ErrorFingerprint.objects.create(
        service=service,
        key="k1",
        grouping_version="1",
        template="boom <*>",
        status=status,
        count=1,
        first_seen=now,
        last_seen=now,
    )


def test_it_finds_an_error_spike_and_is_quiet_without_one():
    fp = fingerprint()
    minute = timezone.now().replace(second=0, microsecond=0)
    ErrorMinute.objects.create(
        fingerprint=fp, service=fp.service, minute=minute - timedelta(minutes=50), count=2
    )
    assert services.checks_run(["errors"])["findings"] == []
    ErrorMinute.objects.create(fingerprint=fp, service=fp.service, minute=minute, count=80)
    found = services.checks_run(["errors"])["findings"]
    assert found[0]["severity"] == "critical" and "Error spike in api" in found[0]["title"]


def test_it_queues_an_investigation_for_a_new_error_and_verifies():
    fp = fingerprint(status="new")
    assert "no investigation" in services.checks_run(["errors"])["findings"][0]["title"]
    ex = services.repair_run(actions=["investigate_new_errors"])
    fp.refresh_from_db()
    assert fp.task_id is not None
    assert ex.status == "succeeded" and ex.verification["targets_remaining"] == []


def test_it_finds_github_unreachable_or_not_configured(settings, alice):
    settings.GITHUB_API_URL = CLOSED_URL
    assert services.checks_run(["github"])["findings"][0]["title"] == "GitHub is not configured."
    Repository.objects.create(name="acme/shop", github_owner="acme", github_name="shop", owner=alice)
    found = services.checks_run(["github"])["findings"][0]
    assert found["severity"] == "critical" and "unreachable" in found["title"]


def test_the_chat_tool_diagnoses_as_the_operator(alice, settings):
    settings.OPENROUTER_API_KEY = ""
    assert tool_spec(tools.diagnose).safe
    with acting_as(alice):
        answer = tools.diagnose()
    assert {c["name"] for c in answer["checks"]} >= {"queue", "workers"}
    assert services.last_diagnosis().actor == "operator:alice"


def test_each_step_streams_on_the_selfheal_topic(settings):
    settings.OPENROUTER_API_KEY = ""
    ex = services.diagnose_run()
    events = list(Event.objects.filter(topic="selfheal").order_by("seq").values_list("type", "data"))
    steps = [d["name"] for t, d in events if t == "step"]
    assert events[0][0] == "diagnose_started" and events[-1][0] == "diagnose_finished"
    assert sorted(steps) == sorted(c["name"] for c in ex.report["checks"])
