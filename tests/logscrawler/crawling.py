"""Shared pieces of the crawler tests: a client for the fake Railway (``fake`` in conftest), lines."""

from datetime import UTC, datetime, timedelta

from juggernaut.http import http_session
from logscrawler.clients import RailwayClient
from tests.fakes.railway import TOKEN

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def client_for(fake, **kwargs) -> RailwayClient:
    session = http_session(max_retries=kwargs.pop("retries", 0), timeout=5)
    session.sleep = lambda seconds: None
    return RailwayClient(
        base_url=fake.url, token=kwargs.pop("token", TOKEN), api_token="", session=session, **kwargs
    )


def errors(
    fake, count: int, start: datetime, message: str = "charge {n} failed: card declined", **kw
) -> None:
    for n in range(count):
        fake.add_log("env-prod", start + timedelta(seconds=n), message.format(n=n), severity="error", **kw)
