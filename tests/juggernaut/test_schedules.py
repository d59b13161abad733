"""sync_schedules: upsert by name, keep timers, delete only our stale ones."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from juggernaut import schedules


@pytest.mark.django_db
def test_it_creates_the_declared_schedules():
    call_command("sync_schedules")
    names = set(Schedule.objects.values_list("name", flat=True))
    assert names == {d.name for d in schedules.declared()}
    prune = Schedule.objects.get(name="hq:events-prune")
    assert prune.func == "juggernaut.tasks.events_prune" and prune.schedule_type == Schedule.DAILY


@pytest.mark.django_db
def test_it_keeps_timers_of_unchanged_schedules():
    call_command("sync_schedules")
    later = timezone.now() + timedelta(hours=5)
    Schedule.objects.filter(name="hq:events-prune").update(next_run=later)
    result = schedules.schedules_sync()
    assert "hq:events-prune" in result["unchanged"]
    assert Schedule.objects.get(name="hq:events-prune").next_run == later


@pytest.mark.django_db
def test_it_updates_changed_ones_and_deletes_stale_ones_but_not_operators():
    call_command("sync_schedules")
    Schedule.objects.filter(name="hq:events-prune").update(func="old.path")
    Schedule.objects.create(name="hq:retired", func="x.y", schedule_type=Schedule.HOURLY)
    Schedule.objects.create(name="operator nightly report", func="x.z", schedule_type=Schedule.DAILY)
    result = schedules.schedules_sync()
    assert result["updated"] == ["hq:events-prune"] and result["deleted"] == ["hq:retired"]
    assert Schedule.objects.get(name="hq:events-prune").func == "juggernaut.tasks.events_prune"
    assert Schedule.objects.filter(name="operator nightly report").exists()


@pytest.mark.django_db
def test_it_leaves_out_schedules_of_switched_off_apps(settings):
    call_command("sync_schedules")
    assert Schedule.objects.filter(name="hq:chat-sweep").exists()
    settings.FEATURE_APPS = {**settings.FEATURE_APPS, "chat": False}
    result = schedules.schedules_sync()
    assert result["deleted"] == ["hq:chat-sweep"]
    assert not Schedule.objects.filter(name="hq:chat-sweep").exists()
    assert Schedule.objects.filter(name="hq:engine-tick").exists()


@pytest.mark.django_db
def test_it_syncs_what_each_app_declares_in_its_tasks_module():
    call_command("sync_schedules")
    tick = Schedule.objects.get(name="hq:engine-tick")
    assert (tick.func, tick.schedule_type, tick.minutes) == (
        "juggernaut.engine.tasks.engine_tick",
        Schedule.MINUTES,
        1,
    )
    crawl = Schedule.objects.get(name="hq:logs-crawl")
    assert crawl.func == "logscrawler.tasks.logs_crawl"


def test_it_refuses_a_schedule_named_outside_its_prefix(monkeypatch):
    from juggernaut import tasks

    monkeypatch.setattr(tasks, "SCHEDULES", [schedules.Declared("nightly", tasks.events_prune, "D")])
    with pytest.raises(ValueError, match="must be named hq:"):
        schedules.declared()
