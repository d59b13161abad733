"""Outbound HTTP for every external API client: explicit timeouts, bounded retries, ``Retry-After``.

Clients build their session here and never call ``requests`` bare, so a dead or rate-limiting API
always costs a bounded, known amount of time. Retrying is urllib3's ``Retry`` (status list, method
rules, ``Retry-After`` parsing, giving up), with three house rules on top: a 429 is retried whatever
the method, since the server says it did not process the request; ``Retry-After`` is capped, so one
answer cannot park a worker for a day; and every pause goes through ``HttpSession.sleep``.
"""

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_RETRY_AFTER_SECONDS = 60.0


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), capped; None when absent or garbled."""
    if not value:
        return None
    try:
        seconds = Retry().parse_retry_after(value.strip())
    except InvalidHeader:
        return None
    return max(0.0, min(float(seconds), MAX_RETRY_AFTER_SECONDS))


class HouseRetry(Retry):
    """urllib3's ``Retry`` with the house rules of the module docstring."""

    def __init__(
        self,
        *args,
        pause: Callable[[float], None] = time.sleep,
        may_retry: Callable[[], bool] = lambda: True,
        on_retry: Callable[[], None] = lambda: None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.pause, self.may_retry, self.on_retry = pause, may_retry, on_retry

    def new(self, **kw) -> "HouseRetry":
        retry = super().new(**kw)  # urllib3 builds each next state with the standard arguments only
        retry.pause, retry.may_retry, retry.on_retry = self.pause, self.may_retry, self.on_retry
        return retry

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if not self.may_retry():  # the caller's budget is spent: hand back what we have
            reason = error or ResponseError(f"not retried: {response.status if response else 'no answer'}")
            raise MaxRetryError(_pool, url, reason)
        self.on_retry()
        return retry

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429 and not self.is_exhausted():
            return True
        return super().is_retry(method, status_code, has_retry_after)

    def get_retry_after(self, response) -> float | None:
        return retry_after_seconds(response.headers.get("Retry-After"))

    def sleep(self, response=None) -> None:
        delay = self.get_retry_after(response) if response is not None else None
        if delay is None:
            delay = self.get_backoff_time()
        if response is not None:
            log.info("answered %s; retrying in %.1fs", response.status, delay)
        self.pause(delay)


class HttpSession(requests.Session):
    """A ``requests.Session`` with a default timeout and retries that honour ``Retry-After``.

    Only idempotent methods are retried on 5xx and read errors; a connection that could not be made
    is retried for any method (nothing was sent), and so is a 429. The first retry goes at once, then
    ``backoff`` doubles with up to 50% jitter. A client may widen ``methods`` and narrow ``statuses``
    (the statuses its API documents as safe to repeat), and with ``network_retries=False`` retry only
    on those answers: a connection or read failure is raised at once.

    ``sent`` counts the requests put on the wire, retries included, for callers that spend a request
    budget; ``may_retry`` (swappable) is asked before each retry, so such a caller can stop them.
    """

    def __init__(
        self,
        *,
        timeout: float,
        max_retries: int,
        backoff: float = 0.5,
        user_agent: str = "juggernaut-hq",
        methods: frozenset[str] = IDEMPOTENT_METHODS,
        statuses: frozenset[int] = RETRY_STATUSES,
        network_retries: bool = True,
    ) -> None:
        super().__init__()
        self.timeout = timeout
        self.max_retries = max_retries
        self.headers["User-Agent"] = user_agent
        self.sleep = time.sleep  # tests can swap this
        self.sent = 0
        self.may_retry: Callable[[], bool] = lambda: True
        retry = HouseRetry(
            total=max_retries,
            # 0 connects: the first failure is final (and still a ConnectTimeout); False reads: the
            # read error itself is raised, as requests' ReadTimeout, not wrapped in a retry error.
            connect=None if network_retries else 0,
            read=None if network_retries else False,
            allowed_methods=methods,
            status_forcelist=statuses,
            backoff_factor=backoff / 2,
            backoff_jitter=backoff / 2,
            raise_on_status=False,  # after the last retry, hand the caller the server's answer
            pause=lambda seconds: self._pause(seconds),
            may_retry=lambda: self.may_retry(),
            on_retry=self._count,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str, url: str, **kwargs) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        self._count()
        return super().request(method, url, **kwargs)

    def _count(self) -> None:
        self.sent += 1

    def _pause(self, seconds: float) -> None:
        self.sleep(seconds)


def http_session(*, timeout: float | None = None, max_retries: int | None = None, **kwargs) -> HttpSession:
    """The session factory every client uses."""
    return HttpSession(
        timeout=settings.HTTP_TIMEOUT_SECONDS if timeout is None else timeout,
        max_retries=settings.HTTP_MAX_RETRIES if max_retries is None else max_retries,
        **kwargs,
    )


def url_shown(url: str) -> str:
    """``url`` fit for a page, a log line or an error: without credentials, query or fragment, where an
    operator may have put a key."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    return urlunsplit((parts.scheme, host + port, parts.path, "", "")) if parts.scheme else url.split("?")[0]
