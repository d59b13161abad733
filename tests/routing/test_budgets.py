"""Budgets: worst-case reservations under a lock, reconciliation to the real cost, streams that fail
halfway, lowered max_tokens, soft thresholds, and 20 concurrent calls on Postgres."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from juggernaut.models import Event
from routing import services
from routing.errors import RoutingError
from routing.models import Budget, CostTracking, Reservation, Usage
from tests.conftest import needs_postgres
from tests.fakes.openrouter import Reply

MESSAGES = [{"role": "user", "content": "Restart the failing deploy?"}]


def worst_case(mode: str, max_tokens: int, messages=MESSAGES) -> Decimal:
    estimate, upper = services.prompt_token_bounds(messages)
    return services.route_select(
        mode, prompt_tokens=estimate, prompt_tokens_max=upper, max_tokens=max_tokens
    ).worst_case()


def rollup(period: str = "day", mode: str = "", session: str = "") -> CostTracking:
    return CostTracking.objects.get(period=period, mode=mode, session=session)


@pytest.mark.django_db
def test_it_records_a_call_with_its_real_cost_and_rolls_it_up(openrouter, fake_openrouter):
    fake_openrouter.script(
        Reply(
            text="Yes, restart it.",
            prompt_tokens=30,
            completion_tokens=5,
            cost=Decimal("0.00002"),
            model="openai/gpt-4o-mini",
            keepalives=1,
        )
    )
    usage, completion = services.completion_run(
        "ops", MESSAGES, max_tokens=300, session="s-1", run="r-1", client=openrouter
    )
    assert completion.content == "Yes, restart it."
    usage.refresh_from_db()
    assert (usage.mode, usage.session, usage.run, usage.model_requested, usage.model_used) == (
        "ops",
        "s-1",
        "r-1",
        "openai/gpt-4o-mini",
        "openai/gpt-4o-mini",
    )
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cost_usd) == (30, 5, Decimal("0.00002"))
    assert (
        usage.cost_source == "usage"
        and usage.finish_reason == "stop"
        and usage.generation_id.startswith("gen-")
    )
    assert (
        usage.ttft_ms is not None
        and usage.latency_ms >= usage.ttft_ms
        and usage.reserved_usd > usage.cost_usd
    )
    assert "first choice" in usage.reason
    for period in ("day", "month", "total"):
        for key in ({}, {"mode": "ops"}, {"session": "s-1"}):
            row = rollup(period, **key)
            assert (row.calls, row.cost_usd, row.reserved_usd, row.prompt_tokens) == (
                1,
                Decimal("0.00002"),
                0,
                30,
            )
    assert Reservation.objects.get().settled_at is not None
    event = Event.objects.filter(topic="routing", type="call").get()
    assert event.data["cost_usd"] == "0.00002" and event.data["model"] == "openai/gpt-4o-mini"
    sent = fake_openrouter.chat_bodies()[-1]
    assert sent["max_tokens"] == 300 and sent["provider"]["max_price"] == {"prompt": 1.0, "completion": 1.0}


@pytest.mark.django_db
def test_a_stream_failing_halfway_is_charged_what_its_usage_says(openrouter, fake_openrouter):
    fake_openrouter.script(
        Reply(text="Restarting now, then", error_after=2, cost=Decimal("0.000011"), completion_tokens=3)
    )
    with pytest.raises(RoutingError) as caught:
        services.completion_run("ops", MESSAGES, max_tokens=500, client=openrouter)
    assert caught.value.code == "model_error" and caught.value.status == 502
    assert caught.value.details["retryable"] is True
    usage = Usage.objects.get()
    assert usage.cost_usd == Decimal("0.000011") and usage.cost_source == "usage"
    assert (
        usage.finish_reason == "error" and usage.error_code == "server_error" and usage.completion_tokens == 3
    )
    assert rollup().cost_usd == Decimal("0.000011") and rollup().reserved_usd == 0 and rollup().errors == 1


@pytest.mark.django_db
def test_a_stream_failing_halfway_without_usage_is_charged_the_whole_reservation(openrouter, fake_openrouter):
    fake_openrouter.script(Reply(text="Restarting now, then", error_after=2, usage=False, cost=None))
    with pytest.raises(RoutingError):
        services.completion_run("ops", MESSAGES, max_tokens=500, client=openrouter)
    usage = Usage.objects.get()
    reserved = worst_case("ops", 500)
    assert usage.cost_source == "reservation" and usage.cost_usd == reserved == usage.reserved_usd
    assert rollup().cost_usd == reserved and rollup().reserved_usd == 0
    # the generation's stats were asked for (404 each time) before falling back to the reservation
    assert sum("/generation" in r["path"] for r in fake_openrouter.requests) == 4


@pytest.mark.django_db
def test_a_cut_stream_without_usage_is_charged_the_generations_exact_cost(openrouter, fake_openrouter):
    fake_openrouter.script(Reply(text="Partial answer", usage=False, done=False, cost=Decimal("0.0000071")))
    with pytest.raises(RoutingError):
        services.completion_run("ops", MESSAGES, max_tokens=500, client=openrouter)
    usage = Usage.objects.get()
    assert usage.cost_source == "generation" and usage.cost_usd == Decimal("0.0000071")
    assert usage.error_code == "connection_lost"


@pytest.mark.django_db
def test_an_error_before_the_stream_is_recorded_and_costs_nothing(openrouter, fake_openrouter):
    from tests.fakes.openrouter import Fail

    fake_openrouter.script(Fail(402, "Insufficient credits"))
    with pytest.raises(RoutingError) as caught:
        services.completion_run("ops", MESSAGES, client=openrouter)
    assert caught.value.code == "model_error" and caught.value.details["retryable"] is False
    usage = Usage.objects.get()
    assert usage.cost_usd == 0 and usage.error_code == "402" and "Insufficient credits" in usage.error
    assert rollup().reserved_usd == 0 and rollup().cost_usd == 0


@pytest.mark.django_db
def test_it_refuses_a_call_whose_worst_case_does_not_fit(openrouter, fake_openrouter):
    services.budget_set(scope="mode", mode="ops", period="day", limit_usd=Decimal("0.0001"))
    with pytest.raises(RoutingError) as caught:
        services.completion_run("ops", MESSAGES, max_tokens=1000, client=openrouter)
    assert caught.value.code == "budget_exceeded" and caught.value.status == 402
    assert "Budget exceeded: the daily budget of mode ops has $0.0001 left" in caught.value.message
    assert fake_openrouter.chat_bodies() == []  # nothing was sent
    assert Event.objects.filter(topic="routing", type="budget_refused").exists()
    assert rollup(mode="ops").reserved_usd == 0


@pytest.mark.django_db
def test_it_lowers_max_tokens_to_fit_when_that_still_leaves_a_useful_answer(openrouter, fake_openrouter):
    budget, _ = services.budget_set(
        scope="global", period="day", limit_usd=worst_case("ops", 600).quantize(Decimal("0.000001"))
    )
    budget.refresh_from_db()
    prompt_part = services.prompt_token_bounds(MESSAGES)[1] * Decimal("0.00000015")
    expected = int((budget.limit_usd - prompt_part) / Decimal("0.0000006"))  # gpt-4o-mini: $0.60/M out
    assert 590 < expected <= 600
    usage, _ = services.completion_run("ops", MESSAGES, max_tokens=1000, client=openrouter)
    assert fake_openrouter.chat_bodies()[-1]["max_tokens"] == expected
    assert usage.max_tokens == expected and f"max_tokens lowered to {expected}" in usage.reason
    assert usage.reserved_usd <= budget.limit_usd


@pytest.mark.django_db
def test_it_refuses_when_lowering_would_leave_less_than_a_useful_answer(
    openrouter, fake_openrouter, settings
):
    settings.ROUTING_MIN_USEFUL_TOKENS = 256
    services.budget_set(scope="session", session="s-9", period="total", limit_usd=worst_case("ops", 200))
    with pytest.raises(RoutingError) as caught:
        services.completion_run("ops", MESSAGES, max_tokens=1000, session="s-9", client=openrouter)
    assert caught.value.code == "budget_exceeded" and "total budget of session s-9" in caught.value.message
    # another session is not limited by s-9's budget
    services.completion_run("ops", MESSAGES, max_tokens=1000, session="s-10", client=openrouter)


@pytest.mark.django_db
def test_crossing_a_soft_limit_raises_an_event(openrouter, fake_openrouter):
    services.budget_set(
        scope="global", period="month", limit_usd=Decimal("1"), soft_limit_usd=Decimal("0.00003")
    )
    fake_openrouter.script(Reply(text="a", cost=Decimal("0.00002")), Reply(text="b", cost=Decimal("0.00002")))
    services.completion_run("ops", MESSAGES, client=openrouter)
    assert not Event.objects.filter(type="budget_threshold").exists()
    services.completion_run("ops", MESSAGES, client=openrouter)
    event = Event.objects.get(type="budget_threshold")
    assert event.data["level"] == "soft" and event.data["budget"] == "monthly budget of all calls"


@pytest.mark.django_db
def test_budget_set_updates_in_place_and_validates():
    budget, created = services.budget_set(scope="mode", mode="code", period="day", limit_usd=Decimal("5"))
    again, created_again = services.budget_set(
        scope="mode", mode="code", period="day", limit_usd=Decimal("7"), soft_limit_usd=Decimal("6")
    )
    assert created and not created_again and again.pk == budget.pk and Budget.objects.get().limit_usd == 7
    for bad in ({"soft_limit_usd": Decimal("8")}, {"limit_usd": Decimal("-1")}):
        with pytest.raises(RoutingError) as caught:
            services.budget_set(**{"scope": "global", "period": "day", "limit_usd": Decimal("7"), **bad})
        assert caught.value.code == "bad_budget"
    with pytest.raises(RoutingError):
        services.budget_set(scope="mode", mode="nope", period="day", limit_usd=Decimal("1"))


@needs_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_never_overspends_with_20_concurrent_calls_against_a_budget_for_5(
    fake_openrouter, seeded_policies
):
    worst = worst_case("ops", 1000)
    limit = 5 * worst
    services.budget_set(scope="global", period="day", limit_usd=limit)
    # Each call costs exactly its worst case, and streams slowly so the calls overlap.
    fake_openrouter.default = Reply(text="done", cost=worst, keepalives=2, first_token_delay=0.3)
    start = threading.Barrier(20)
    outcomes: list = []
    peak: list[Decimal] = []
    stop = threading.Event()

    def call() -> None:
        try:
            start.wait(10)
            services.completion_run("ops", MESSAGES, max_tokens=1000)
            outcomes.append("ok")
        except RoutingError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    def watch() -> None:
        try:
            while not stop.is_set():
                row = CostTracking.objects.filter(period="day", mode="", session="").first()
                if row is not None:
                    peak.append(row.cost_usd + row.reserved_usd)
        finally:
            connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    watcher.join(10)
    assert sorted(outcomes) == ["budget_exceeded"] * 15 + ["ok"] * 5
    row = rollup()
    assert row.cost_usd == limit and row.reserved_usd == 0 and row.calls == 5
    assert max(peak) <= limit
    # Five calls made; the fifteen refusals are listed with the calls, as calls never made.
    assert Usage.objects.made().count() == 5 and len(fake_openrouter.chat_bodies()) == 5
    assert Usage.objects.exclude(pk__in=Usage.objects.made()).count() == 15


@pytest.mark.django_db
def test_a_reservation_whose_call_never_reported_back_is_charged_and_released():
    from datetime import timedelta

    from django.utils import timezone

    selection = services.route_select("ops", prompt_tokens=10, max_tokens=100)
    reservation = services.budget_reserve(selection, session="s-dead")
    assert rollup().reserved_usd == reservation.amount_usd
    assert services.reservations_expire() == 0  # still young: its call may be running
    assert services.reservations_expire(now=timezone.now() + timedelta(hours=2)) == 1
    usage = Usage.objects.get()
    assert usage.error_code == "abandoned" and usage.cost_usd == reservation.amount_usd == usage.reserved_usd
    assert rollup().reserved_usd == 0 and rollup().cost_usd == reservation.amount_usd
    assert services.reservations_expire(now=timezone.now() + timedelta(hours=3)) == 0


@pytest.mark.django_db
def test_a_stopped_call_is_counted_as_cancelled_never_as_failed(alice_client, settings):
    settings.OPENROUTER_API_KEY = "sk-or-test"
    from routing.clients import OpenRouterError
    from routing.live import routing_area_status

    selection = services.route_select("ops", prompt_tokens=10, max_tokens=100)
    reservation = services.budget_reserve(selection, session="s-stop")
    services.usage_record(
        reservation,
        selection,
        None,
        error=OpenRouterError("cancelled", "the call was cancelled", permanent=True),
    )
    usage = Usage.objects.get()
    assert usage.outcome == "cancelled"
    assert rollup().calls == 1 and rollup().errors == 0, "counted, not failed"
    line = routing_area_status()
    assert line.state == "ok" and "failed" not in line.text, line
    page = alice_client.get("/routing/").content.decode()
    assert "cancelled" in page and "row-error" not in page
    call = Event.objects.filter(topic="routing", type="call").latest("seq").data
    assert call["outcome"] == "cancelled" and "failed" not in call["message"]
