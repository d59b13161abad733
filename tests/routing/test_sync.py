"""The catalog sync (command, schedule, task) and the chat tools."""

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django_q.models import Schedule

from juggernaut.schedules import schedules_sync
from routing import services, tasks, tools
from routing.models import CatalogModel, RoutingState
from tests.fakes.openrouter import Reply

pytestmark = pytest.mark.django_db


def test_sync_models_fills_the_catalog_and_checks_the_key(fake_openrouter, capsys):
    CatalogModel.objects.create(model_id="retired/model", context_length=1000)
    call_command("sync_models")
    out = capsys.readouterr().out
    assert "synced 4 models" in out and "key: ok" in out
    assert set(CatalogModel.objects.values_list("model_id", flat=True)) == {
        m["id"] for m in fake_openrouter.models
    }
    gpt = CatalogModel.objects.get(model_id="openai/gpt-4o")
    assert (
        gpt.prompt_per_1k == Decimal("0.0025") and gpt.source == "sync" and gpt.max_completion_tokens == 16384
    )
    state = RoutingState.load()
    assert state.models_count == 4 and state.models_synced_at and state.key_limit == Decimal("20")


def test_a_sync_against_a_dead_api_fails_clearly_and_is_remembered(settings):
    settings.OPENROUTER_BASE_URL = "http://127.0.0.1:9/api/v1"
    settings.HTTP_MAX_RETRIES = 0
    with pytest.raises(CommandError, match="could not be fetched"):
        call_command("sync_models")
    assert "unreachable" in RoutingState.load().sync_error
    assert tasks.models_sync()["error"]  # the scheduled task logs it instead of raising


def test_the_daily_sync_is_a_declared_schedule():
    schedules_sync()
    schedule = Schedule.objects.get(name="hq:routing-sync-models")
    assert schedule.func == "routing.tasks.models_sync" and schedule.schedule_type == Schedule.DAILY


def test_tools_report_spend_budgets_and_policies(fake_openrouter, openrouter):
    services.budget_set(scope="global", period="day", limit_usd=Decimal("2"), soft_limit_usd=Decimal("1"))
    fake_openrouter.script(Reply(text="ok", cost=Decimal("0.25")))
    services.completion_run("code", [{"role": "user", "content": "hi"}], client=openrouter)
    assert tools.spend_today() == {
        "today_usd": 0.25,
        "today_calls": 1,
        "today_failed_calls": 0,
        "month_usd": 0.25,
        "month_calls": 1,
        "today_by_mode": {"code": 0.25},
    }
    [budget] = tools.budgets()
    assert (
        budget["budget"] == "daily budget of all calls"
        and budget["spent_usd"] == 0.25
        and budget["state"] == "ok"
    )
    policies = {p["mode"]: p for p in tools.policies()}
    assert policies["ops"]["max_price_per_1k_usd"] == 0.001 and policies["ops"]["problems"] == []
    assert tools.spend_today.__doc__ and tools.spend_today.__annotations__["return"] is dict


def test_stale_reservations_are_expired_hourly():
    schedules_sync()
    schedule = Schedule.objects.get(name="hq:routing-expire-reservations")
    assert schedule.func == "routing.tasks.reservations_expire" and schedule.schedule_type == Schedule.HOURLY
    assert tasks.reservations_expire() == 0
