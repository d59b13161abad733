"""Routing fixtures: the fake OpenRouter wired into the settings, and a client whose sleeps are recorded."""

from collections.abc import Iterator
from importlib import import_module

import pytest
from django.apps import apps

from routing.clients import OpenRouterClient
from routing.models import Policy
from tests.fakes.openrouter import FakeOpenRouter


@pytest.fixture
def fake_openrouter(settings) -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        settings.OPENROUTER_BASE_URL = fake.url
        settings.OPENROUTER_API_KEY = fake.api_key
        settings.OPENROUTER_CONNECT_TIMEOUT_SECONDS = 2.0
        settings.OPENROUTER_IDLE_TIMEOUT_SECONDS = 2.0
        yield fake


@pytest.fixture
def openrouter(fake_openrouter, settings) -> OpenRouterClient:
    """A client of the fake with the production retries; ``client.slept`` lists the pauses it took."""
    settings.HTTP_MAX_RETRIES = 3
    c = OpenRouterClient()
    c.slept = []
    c.sleep = c.session.sleep = c.slept.append
    return c


@pytest.fixture
def seeded_policies() -> None:
    """The four policies of the data migration, again: a transactional test before this one may have
    flushed every table."""
    if not Policy.objects.exists():
        import_module("routing.migrations.0002_seed_policies").seed(apps, None)
