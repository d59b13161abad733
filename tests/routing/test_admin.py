"""Routing's admin screens: they render, and a policy above its own cap is refused there too."""

import pytest

from routing.models import Policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "model", ["policy", "budget", "catalogmodel", "usage", "costtracking", "reservation"]
)
def test_every_routing_screen_renders(admin_client, model):
    assert admin_client.get(f"/admin/routing/{model}/").status_code == 200


def test_the_admin_refuses_a_policy_whose_model_breaks_its_cap(admin_client):
    ops = Policy.objects.get(mode="ops")
    form = {
        "mode": "ops",
        "model": "openai/gpt-4o",
        "fallback_models": '["google/gemini-2.0-flash-001"]',
        "max_price_per_1k": "0.001",
        "max_context_tokens": "16000",
        "max_iterations": "5",
        "max_output_tokens": "1024",
        "sort": "",
        "allow_fallbacks": "on",
    }
    response = admin_client.post(f"/admin/routing/policy/{ops.pk}/change/", form)
    assert response.status_code == 200
    assert "openai/gpt-4o costs $0.0025 per 1k prompt tokens" in response.content.decode()
    assert Policy.objects.get(mode="ops").model == "openai/gpt-4o-mini"
    response = admin_client.post(
        f"/admin/routing/policy/{ops.pk}/change/", {**form, "max_price_per_1k": "0.02"}
    )
    assert response.status_code == 302 and Policy.objects.get(mode="ops").model == "openai/gpt-4o"
