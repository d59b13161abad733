"""Policies: the seeded four, validation against their own caps, selection with fallbacks, refusals."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from routing import services
from routing.errors import RoutingError
from routing.models import CatalogModel, Policy, price_snapshot

pytestmark = pytest.mark.django_db


def test_the_four_plan_policies_are_seeded_and_valid_against_the_bundled_snapshot():
    policies = {p.mode: p for p in Policy.objects.all()}
    assert {
        m: (p.model, p.max_price_per_1k, p.max_context_tokens, p.max_iterations) for m, p in policies.items()
    } == {
        "normal": ("openrouter/auto", Decimal("0.01"), 32000, 10),
        "deep_research": ("openai/gpt-4o", Decimal("0.1"), 200000, 50),
        "code": ("openai/gpt-4o", Decimal("0.03"), 200000, 20),
        "ops": ("openai/gpt-4o-mini", Decimal("0.001"), 16000, 5),
    }
    assert not CatalogModel.objects.exists()  # no sync yet: the snapshot answers
    for policy in policies.values():
        assert policy.fallback_models, policy.mode
        policy.full_clean()  # raises if a model breaks the policy's own caps
    assert price_snapshot()["as_of"]


def test_a_policy_whose_model_costs_more_than_its_cap_is_rejected():
    ops = Policy.objects.get(mode="ops")
    ops.model = "openai/gpt-4o"  # $0.0025 / $0.01 per 1k, above ops' $0.001
    with pytest.raises(ValidationError) as caught:
        ops.full_clean()
    assert (
        "openai/gpt-4o costs $0.0025 per 1k prompt tokens, above this policy's $0.001 cap"
        in caught.value.messages
    )


def test_a_fallback_above_the_cap_or_unknown_is_rejected_too():
    with pytest.raises(RoutingError) as caught:
        services.policy_update(
            "code",
            fallback_models=["anthropic/claude-sonnet-4", "nobody/unknown-model"],
            max_price_per_1k=Decimal("0.01"),
        )
    assert caught.value.code == "bad_policy"
    assert "claude-sonnet-4 costs $0.015 per 1k completion tokens" in caught.value.message
    assert "nobody/unknown-model is not in the model catalog" in caught.value.message
    assert Policy.objects.get(mode="code").max_price_per_1k == Decimal("0.03")  # unchanged


def test_a_model_without_fixed_price_passes_validation_since_max_price_caps_it():
    normal = Policy.objects.get(mode="normal")
    assert normal.problems(CatalogModel.objects.lookup(normal.candidates)) == []


def test_selection_takes_the_first_choice_and_keeps_the_fitting_fallbacks():
    selection = services.route_select("code", prompt_tokens=1000, needs_tools=True)
    assert selection.models == ["openai/gpt-4o", "anthropic/claude-sonnet-4"]
    assert selection.reason.startswith("openai/gpt-4o: the code policy's first choice")
    # reservation prices: the dearest candidate (claude: $3 / $15 per million)
    assert selection.prompt_price == Decimal("0.000003") and selection.completion_price == Decimal("0.000015")
    body = selection.body(
        [{"role": "user", "content": "hi"}], tools=[{"type": "function"}], tool_choice="auto"
    )
    assert body["provider"]["max_price"] == {"prompt": 30.0, "completion": 30.0}  # $0.03/1k = $30/M
    assert body["models"] == selection.models and body["max_tokens"] == 8192


def test_models_that_just_failed_for_the_caller_go_last_without_being_dropped():
    selection = services.route_select("code", prompt_tokens=1000, avoid_models=["openai/gpt-4o"])
    assert selection.models == ["anthropic/claude-sonnet-4", "openai/gpt-4o"]
    assert selection.reason.startswith(
        "anthropic/claude-sonnet-4: the code policy's first fallback that fits"
    )
    assert "(avoiding openai/gpt-4o after an error)" in selection.reason
    # A policy with nothing else that fits still answers, with the model it has.
    only = services.route_select(
        "code", prompt_tokens=1000, avoid_models=["openai/gpt-4o", "anthropic/claude-sonnet-4"]
    )
    assert only.models == ["openai/gpt-4o", "anthropic/claude-sonnet-4"]


def test_a_prompt_too_long_for_the_first_model_falls_back_to_a_larger_context():
    selection = services.route_select("deep_research", prompt_tokens=150_000)
    assert selection.model == "anthropic/claude-sonnet-4"
    assert "openai/gpt-4o's context of 128,000 tokens is too small" in selection.reason
    assert selection.max_tokens == 8192


def test_a_prompt_larger_than_the_policy_context_is_refused_with_a_sentence():
    with pytest.raises(RoutingError) as caught:
        services.route_select("ops", prompt_tokens=20_000)
    assert caught.value.code == "no_model_fits"
    assert "does not fit the ops policy's context of 16,000 tokens" in caught.value.message


def test_no_model_fits_when_none_supports_tools():
    CatalogModel.objects.create(
        model_id="openai/gpt-4o-mini",
        context_length=128000,
        prompt_price=Decimal("1.5E-7"),
        completion_price=Decimal("6E-7"),
        supported_parameters=["max_tokens"],
    )
    CatalogModel.objects.create(
        model_id="google/gemini-2.0-flash-001",
        context_length=1048576,
        prompt_price=Decimal("1E-7"),
        completion_price=Decimal("4E-7"),
    )
    with pytest.raises(RoutingError) as caught:
        services.route_select("ops", prompt_tokens=100, needs_tools=True)
    assert caught.value.code == "no_model_fits"
    assert "openai/gpt-4o-mini does not support tools" in caught.value.message
    assert services.route_select("ops", prompt_tokens=100).model == "openai/gpt-4o-mini"


def test_an_unpriced_model_is_reserved_at_the_policy_cap():
    selection = services.route_select("normal", prompt_tokens=100, max_tokens=1000)
    assert selection.model == "openrouter/auto"
    assert selection.completion_price == Decimal("0.00001")  # $0.01 per 1k
    assert selection.worst_case() == selection.prompt_tokens_max * Decimal("0.00001") + 1000 * Decimal(
        "0.00001"
    )


def test_an_unknown_mode_is_a_404():
    with pytest.raises(RoutingError) as caught:
        services.route_select("poetry", prompt_tokens=10)
    assert caught.value.status == 404 and "known: code, deep_research, normal, ops" in caught.value.message


def test_prompt_bounds_never_undercount_bytes():
    messages = [{"role": "user", "content": "Grüße 🚀" * 50}]
    estimate, upper = services.prompt_token_bounds(messages)
    assert upper >= len(("Grüße 🚀" * 50).encode()) and estimate < upper


def test_openrouter_fields_can_be_left_out_for_strict_openai_compatible_servers(settings):
    selection = services.route_select("code", prompt_tokens=100)
    settings.OPENROUTER_EXTENSIONS = False
    body = selection.body([{"role": "user", "content": "hi"}])
    assert set(body) == {"model", "messages", "max_tokens"}
