"""A provider's error text is outside text: when it quotes the API key, the key reaches no page, no
usage row, no event and no log line."""

import logging

import pytest
from django.core import serializers

from juggernaut.models import Event
from routing.models import Usage
from tests.fakes.openrouter import Fail, Reply

pytestmark = pytest.mark.django_db

KEY = "sk-or-v1-" + "9f3c" * 16
MESSAGES = [{"role": "user", "content": "Which deploy failed?"}]


@pytest.fixture
def echoing(fake_openrouter, settings):
    fake_openrouter.api_key = settings.OPENROUTER_API_KEY = KEY
    settings.HTTP_MAX_RETRIES = 0
    return fake_openrouter


def _complete(client, bearer):
    return client.post(
        "/api/routing/complete",
        {"mode": "ops", "messages": MESSAGES},
        content_type="application/json",
        **bearer("write"),
    )


def _everywhere(response, alice_client, caplog) -> str:
    """Everything the HQ shows, stores or logs after the call, as one text."""
    return "\n".join(
        [
            response.content.decode(),
            alice_client.get("/routing/").content.decode(),
            alice_client.get("/api/routing/usage").content.decode(),
            serializers.serialize("json", Usage.objects.all()),
            serializers.serialize("json", Event.objects.all()),
            caplog.text,
        ]
    )


@pytest.mark.parametrize(
    "failure",
    [
        Fail(401, f"Incorrect API key provided: {KEY}", metadata={"raw": f"Authorization: Bearer {KEY}"}),
        Reply(
            text="Deploy 42 failed", error_after=1, error_message=f"upstream refused key {KEY[:-1]}{KEY[-1]}"
        ),
    ],
    ids=["error-answer", "mid-stream-error"],
)
def test_it_keeps_a_key_the_provider_echoes_out_of_everything(
    echoing, client, bearer, alice_client, caplog, failure
):
    caplog.set_level(logging.DEBUG)
    echoing.script(failure)
    response = _complete(client, bearer)
    assert response.status_code == 502
    assert Usage.objects.get().error  # the error was recorded, only without the key
    assert "[redacted]" in Usage.objects.get().error
    assert KEY not in _everywhere(response, alice_client, caplog)
