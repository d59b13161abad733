"""The four policies of the plan: normal, deep_research, code and ops (operators edit them afterwards)."""

from decimal import Decimal

from django.db import migrations

POLICIES = [
    # mode, model, fallbacks, USD per 1k tokens, context, iterations, max output tokens
    ("normal", "openrouter/auto", ["openai/gpt-4o-mini", "anthropic/claude-3.5-haiku"], "0.01", 32000, 10, 2048),
    ("deep_research", "openai/gpt-4o", ["anthropic/claude-sonnet-4", "google/gemini-2.5-pro"], "0.10", 200000, 50, 8192),
    ("code", "openai/gpt-4o", ["anthropic/claude-sonnet-4"], "0.03", 200000, 20, 8192),
    ("ops", "openai/gpt-4o-mini", ["google/gemini-2.0-flash-001"], "0.001", 16000, 5, 1024),
]


def seed(apps, schema_editor):
    Policy = apps.get_model("routing", "Policy")
    for mode, model, fallbacks, price, context, iterations, output in POLICIES:
        Policy.objects.get_or_create(
            mode=mode,
            defaults={
                "model": model,
                "fallback_models": fallbacks,
                "max_price_per_1k": Decimal(price),
                "max_context_tokens": context,
                "max_iterations": iterations,
                "max_output_tokens": output,
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("routing", "Policy").objects.filter(mode__in=[p[0] for p in POLICIES]).delete()


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
