"""Manual auto-heal runs are limited per operator, apart from the breaker that guards the schedule: an
operator hammering the button (or a script with her tokens) neither opens the schedule's breaker nor
spends anyone else's allowance."""

import pytest

from selfheal import services
from selfheal.models import Execution
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quiet_externals(settings):
    settings.OPENROUTER_API_KEY = ""


def ask(client, headers: dict):
    return client.post("/api/self-heal/auto-heal", **headers)


def test_it_keeps_six_manual_calls_from_opening_the_schedules_breaker(client, bearer, settings):
    settings.SELFHEAL_MANUAL_RUNS_PER_HOUR = 3
    assert settings.SELFHEAL_MAX_RUNS_PER_HOUR == 6
    # Two tokens of alice's, so a second token buys no second allowance.
    tokens = [bearer("write"), bearer("write")]
    answers = [ask(client, tokens[i % 2]) for i in range(6)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]
    refused = answers[-1].json()["error"]
    assert refused["code"] == "rate_limited" and refused["details"] == {"limit": 3}
    assert Execution.objects.filter(kind="auto_heal").count() == 3
    assert services.breaker_state() == ""
    scheduled = services.auto_heal_run()
    assert scheduled.status == "succeeded"
    assert all(step["name"] != "circuit_breaker" for step in scheduled.steps)


def test_it_leaves_another_operator_their_own_allowance(
    client, bearer, make_token, settings, django_user_model
):
    settings.SELFHEAL_MANUAL_RUNS_PER_HOUR = 1
    carol = django_user_model.objects.create_user("carol", "c@example.com", PASSWORD, is_staff=True)
    assert ask(client, bearer("write")).status_code == 200
    assert ask(client, bearer("write")).status_code == 429
    carols = {"HTTP_AUTHORIZATION": f"Bearer {make_token('write', user=carol)}"}
    assert ask(client, carols).status_code == 200
