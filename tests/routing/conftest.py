"""Routing fixtures: the fake OpenRouter wired into the settings, and a client whose sleeps are recorded."""

from collections.abc import Iterator

import pytest

from routing.clients import OpenRouterClient
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
def openrouter(fake_openrouter) -> OpenRouterClient:
    """A client of the fake; ``client.slept`` lists the pauses it took between retries."""
    c = OpenRouterClient()
    c.slept = []
    c.sleep = c.session.sleep = c.slept.append
    return c
