"""Outbound HTTP for every external API client: explicit timeouts, bounded retries, ``Retry-After``.

Clients build their session here and never call ``requests`` bare, so a dead or rate-limiting API
always costs a bounded, known amount of time.
"""

import email.utils
import logging
import random
import time
from datetime import UTC, datetime

import requests
from django.conf import settings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0


class HttpSession(requests.Session):
    """A ``requests.Session`` with a default timeout and retries that honour ``Retry-After``.

    Only idempotent methods are retried on errors; any method is retried on 429, since the server
    said it did not process the request.
    """

    def __init__(
        self, *, timeout: float, max_retries: int, backoff: float = 0.5, user_agent: str = "juggernaut-hq"
    ) -> None:
        super().__init__()
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.headers["User-Agent"] = user_agent
        self.sleep = time.sleep  # tests can swap this

    def request(self, method: str, url: str, **kwargs) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        idempotent = method.upper() in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
        attempt = 0
        while True:
            try:
                response = super().request(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout):
                if not idempotent or attempt >= self.max_retries:
                    raise
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            retryable = response.status_code == 429 or (idempotent and response.status_code in RETRY_STATUSES)
            if not retryable or attempt >= self.max_retries:
                return response
            delay = retry_after_seconds(response.headers.get("Retry-After"))
            log.info(
                "%s %s answered %s; retry %d in %.1fs",
                method,
                url,
                response.status_code,
                attempt + 1,
                delay if delay is not None else self._backoff(attempt),
            )
            self.sleep(delay if delay is not None else self._backoff(attempt))
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return self.backoff * (2**attempt) * (0.5 + random.random() / 2)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), capped; None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def http_session(*, timeout: float | None = None, max_retries: int | None = None, **kwargs) -> HttpSession:
    """The session factory every client uses."""
    return HttpSession(
        timeout=settings.HTTP_TIMEOUT_SECONDS if timeout is None else timeout,
        max_retries=settings.HTTP_MAX_RETRIES if max_retries is None else max_retries,
        **kwargs,
    )
