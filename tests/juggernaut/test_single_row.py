"""Single-row tables (engine state, routing state, alert thresholds) share one base: row 1, always."""

import pytest

from juggernaut.engine.models import EngineState
from logscrawler.models import AlertThresholds
from routing.models import RoutingState


@pytest.mark.django_db
@pytest.mark.parametrize("model", [EngineState, RoutingState, AlertThresholds])
def test_it_creates_the_one_row_on_first_load_and_returns_it_after(model):
    model.objects.all().delete()  # the engine's row comes with its migrations
    assert model.peek() is None
    first = model.load()
    assert first.pk == 1 and model.peek() == first
    assert model.load().pk == 1 and model.objects.count() == 1


@pytest.mark.django_db
def test_it_writes_a_new_instance_over_the_one_row_instead_of_adding_a_second():
    RoutingState.load()
    RoutingState(models_count=7).save()
    assert RoutingState.objects.count() == 1 and RoutingState.load().models_count == 7


@pytest.mark.django_db
def test_it_stores_the_thresholds_an_operator_adds_in_the_admin_as_the_one_row(alice_client):
    answer = alice_client.post("/admin/logscrawler/alertthresholds/add/", {"spike_min": "5"})
    assert answer.status_code == 302 and AlertThresholds.peek().spike_min == 5
    # Once the row exists the add form is gone: it is edited, never doubled.
    again = alice_client.post("/admin/logscrawler/alertthresholds/add/", {"spike_min": "6"})
    assert again.status_code == 403 and AlertThresholds.objects.count() == 1
