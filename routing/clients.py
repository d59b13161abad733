"""OpenRouter's HTTP API (any OpenAI-compatible server works the same way): chat completions, streamed
or not, the model list, the key's limits and a generation's exact cost.

Pure I/O over ``juggernaut.http`` sessions: no models, typed results, one error class. Every base URL
and timeout is a setting, so tests point the client at a local fake. Parsing what the server sends
(the SSE decoder, the completion assembler, the result types) is ``routing.sse``; its names are
importable from here too.
"""

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings
from urllib3.exceptions import HTTPError as Urllib3Error

from juggernaut.http import HttpSession, http_session, retry_after_seconds
from routing.sse import (
    Completion,
    CompletionAssembler,
    OpenRouterError,
    SSEDecoder,
    ToolCall,
    Usage,
    error_from_body,
    join_surrogates,
    to_decimal,
    to_int,
)

__all__ = [
    "ChatStream",
    "Completion",
    "CompletionAssembler",
    "KeyInfo",
    "ModelInfo",
    "OpenRouterClient",
    "OpenRouterError",
    "SSEDecoder",
    "ToolCall",
    "Usage",
    "error_from_response",
    "join_surrogates",
]

log = logging.getLogger(__name__)

# Statuses after which the same request may succeed later (the server said so, or it was busy).
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# What the client itself retries before a stream starts: the errors OpenRouter documents as retryable
# (request timeout, rate limited, the model's provider down or busy). A 500/504 is left to the caller.
CHAT_RETRY_STATUSES = frozenset({408, 429, 502, 503})
READ_SIZE = 65536
CANCEL_POLL_SECONDS = 0.05  # how often a call waiting for the answer's headers looks at its cancel flag


@dataclass
class ModelInfo:
    """An entry of ``GET /models``; prices are USD per token, None when the model has no fixed price."""

    id: str
    name: str
    context_length: int
    prompt_price: Decimal | None
    completion_price: Decimal | None
    supported_parameters: list[str]
    max_completion_tokens: int | None = None


@dataclass
class KeyInfo:
    label: str
    limit: Decimal | None
    remaining: Decimal | None
    usage: Decimal
    is_free_tier: bool = False


def _price(value: Any) -> Decimal | None:
    """A per-token price; negative ("-1", as ``openrouter/auto`` lists) means no fixed price."""
    price = to_decimal(value)
    return None if price is None or price < 0 else price


def error_from_response(response: requests.Response) -> OpenRouterError:
    """The JSON error a server sent instead of a completion (or a plain body, when it was not JSON)."""
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if error is None:
        error = {"code": response.status_code, "message": (response.text or response.reason or "")[:300]}
    result = error_from_body(error, status=response.status_code, retry_after=retry_after)
    result.permanent = response.status_code not in TRANSIENT_STATUSES
    return result


class ChatStream:
    """A streamed completion: iterate for text deltas, then read ``completion``.

    ``cancel()`` may be called from any thread; the reading thread stops within a second (the socket
    is shut down under it). A silence longer than the idle timeout between chunks raises ``timeout``;
    keep-alive comments count as life. Whatever ends the stream, ``completion`` is then assembled.
    """

    def __init__(self, response: requests.Response, *, started: float) -> None:
        self.response = response
        self.started = started
        self.assembler = CompletionAssembler()
        self.decoder = SSEDecoder()
        self.chunks = 0
        self._cancelled = threading.Event()
        self._done = False

    @property
    def completion(self) -> Completion:
        return self.assembler.completion

    def cancel(self) -> None:
        self._cancelled.set()
        try:
            self.response.raw.shutdown()
        except (ValueError, RuntimeError, OSError, AttributeError):
            self.response.close()

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._read()
        except OpenRouterError as exc:
            # Broken off (timeout, lost connection, cancel): the completion still holds what came,
            # tool calls assembled, with finish_reason "error" and the error that ended it.
            if self.completion.error is None:
                self.completion.error = exc
            self.assembler.finish()
            raise
        finally:
            self.response.close()

    def _read(self) -> Iterator[str]:
        raw = self.response.raw
        while not self._done:
            if self._cancelled.is_set():
                raise OpenRouterError("cancelled", "the call was cancelled", permanent=True)
            try:
                data = raw.read1(READ_SIZE)
            except (requests.RequestException, Urllib3Error, OSError) as exc:
                if self._cancelled.is_set():
                    raise OpenRouterError("cancelled", "the call was cancelled", permanent=True) from exc
                kind = "timeout" if "timed out" in str(exc).lower() else "connection_lost"
                raise OpenRouterError(kind, f"the stream broke off: {exc.__class__.__name__}") from exc
            events = self.decoder.feed(data) if data else self.decoder.close()
            for payload in events:
                text = self._event(payload)
                if text:
                    yield text
            if not data:
                break
        if self._cancelled.is_set():
            raise OpenRouterError("cancelled", "the call was cancelled", permanent=True)
        if not self._done and self.completion.error is None:
            # The connection closed without [DONE]: the answer may be cut short.
            self.completion.error = OpenRouterError("connection_lost", "the stream ended before [DONE]")
        self.assembler.finish()

    def _event(self, payload: str) -> str:
        if payload.strip() == "[DONE]":
            self._done = True
            return ""
        try:
            chunk = json.loads(payload)
        except ValueError:
            log.warning("skipping a stream event that is not JSON (%d bytes)", len(payload))
            return ""
        if not isinstance(chunk, dict):
            return ""
        self.chunks += 1
        text = self.assembler.add(chunk)
        if (text or self.assembler._calls) and self.completion.first_token_seconds is None:
            self.completion.first_token_seconds = time.monotonic() - self.started
        return text

    def collect(self) -> Completion:
        """Read the stream to its end and return the completion (an error ends it with ``error`` set)."""
        for _ in self:
            pass
        return self.completion


class OpenRouterClient:
    """``POST /chat/completions``, ``GET /models``, ``GET /key``, ``GET /generation``."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        connect_timeout: float | None = None,
        idle_timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        self.base_url = (base_url or settings.OPENROUTER_BASE_URL).rstrip("/")
        self.api_key = settings.OPENROUTER_API_KEY if api_key is None else api_key
        self.connect_timeout = connect_timeout or settings.OPENROUTER_CONNECT_TIMEOUT_SECONDS
        self.idle_timeout = idle_timeout or settings.OPENROUTER_IDLE_TIMEOUT_SECONDS
        self.max_retries = settings.HTTP_MAX_RETRIES if max_retries is None else max_retries
        # A chat POST is repeated only on the answers OpenRouter documents as retryable, which come
        # before any generation; a connection or read failure is not repeated, since a request that
        # may have reached the model may already be running (and billed).
        self.chat_session: HttpSession = http_session(
            max_retries=self.max_retries,
            methods=frozenset({"POST"}),
            statuses=CHAT_RETRY_STATUSES,
            network_retries=False,
        )
        self.session: HttpSession = http_session(max_retries=self.max_retries)
        headers = {"HTTP-Referer": settings.OPENROUTER_APP_URL, "X-Title": settings.OPENROUTER_APP_TITLE}
        for s in (self.chat_session, self.session):
            s.headers.update({k: v for k, v in headers.items() if v})
            if self.api_key:
                s.headers["Authorization"] = f"Bearer {self.api_key}"
        self.sleep = time.sleep  # tests can swap this; the chat session's retries pause through it
        self.chat_session.sleep = lambda seconds: self.sleep(seconds)

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.idle_timeout)

    # --- chat -----------------------------------------------------------------------------------

    def chat(self, body: dict) -> Completion:
        """A non-streamed completion. Raises ``OpenRouterError`` on an error answer."""
        started = time.monotonic()
        response = self._post_chat({**body, "stream": False}, stream=False)
        try:
            data = response.json()
        except ValueError as exc:
            raise OpenRouterError(
                "bad_response", "the answer is not JSON", status=response.status_code
            ) from exc
        assembler = CompletionAssembler()
        assembler.add(data if isinstance(data, dict) else {})
        completion = assembler.finish()
        completion.first_token_seconds = time.monotonic() - started
        if completion.error is not None:
            raise completion.error
        return completion

    def chat_stream(self, body: dict, *, cancel: threading.Event | None = None) -> ChatStream:
        """Start a streamed completion; errors before the first byte of the stream raise here.

        With ``cancel``, setting it ends the wait for the answer's headers within ``CANCEL_POLL_SECONDS``
        in every phase (connecting, a retry's backoff, a provider that queues the request); once the
        stream exists, ``ChatStream.cancel`` stops it."""
        started = time.monotonic()
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        if cancel is None:
            return ChatStream(self._post_chat(body, stream=True), started=started)
        return ChatStream(self._post_cancellable(body, cancel), started=started)

    def _post_cancellable(self, body: dict, cancel: threading.Event) -> requests.Response:
        """The POST on a thread of its own, which a cancel abandons: the caller never waits for the
        provider. What the abandoned thread gets afterwards is closed unread."""
        outcome: dict[str, Any] = {}
        lock = threading.Lock()
        done = threading.Event()

        def post() -> None:
            try:
                response = self._post_chat(body, stream=True)
            except BaseException as exc:  # handed to the waiting caller, raised there
                response, outcome["error"] = None, exc
            with lock:
                done.set()
                if outcome.get("abandoned") and response is not None:
                    response.close()
                outcome["response"] = response

        threading.Thread(target=post, name="openrouter-post", daemon=True).start()
        while not done.wait(CANCEL_POLL_SECONDS):
            if cancel.is_set():
                with lock:
                    if not done.is_set():
                        outcome["abandoned"] = True
                        raise OpenRouterError(
                            "cancelled", "the call was cancelled before the server answered", permanent=True
                        )
        if "error" in outcome:
            raise outcome["error"]
        return outcome["response"]

    def _post_chat(self, body: dict, *, stream: bool) -> requests.Response:
        """POST the completion; the session has retried what may be retried (``Retry-After`` honoured)."""
        url = f"{self.base_url}/chat/completions"
        try:
            response = self.chat_session.post(url, json=body, stream=stream, timeout=self.timeout)
        except requests.ConnectTimeout as exc:
            raise OpenRouterError("timeout", f"no connection to {self.base_url} within the timeout") from exc
        except requests.Timeout as exc:
            raise OpenRouterError("timeout", "the server did not answer within the timeout") from exc
        except requests.ConnectionError as exc:
            raise OpenRouterError("unreachable", f"cannot reach {self.base_url}") from exc
        if response.status_code == 200:
            return response
        error = error_from_response(response)
        response.close()
        raise error

    # --- reads ----------------------------------------------------------------------------------

    def _get(self, path: str, **params) -> Any:
        try:
            response = self.session.get(f"{self.base_url}{path}", params=params or None, timeout=self.timeout)
        except requests.RequestException as exc:
            raise OpenRouterError(
                "unreachable", f"cannot reach {self.base_url}: {exc.__class__.__name__}"
            ) from exc
        if response.status_code != 200:
            raise error_from_response(response)
        try:
            return response.json()
        except ValueError as exc:
            raise OpenRouterError("bad_response", f"{path} did not answer JSON", status=200) from exc

    def models(self) -> list[ModelInfo]:
        """The model list: per-token prices (strings on the wire), context length, parameters."""
        result = []
        for entry in self._get("/models").get("data") or []:
            if not isinstance(entry, dict) or not entry.get("id"):
                continue
            pricing = entry.get("pricing") or {}
            top = entry.get("top_provider") or {}
            result.append(
                ModelInfo(
                    id=str(entry["id"])[:200],
                    name=str(entry.get("name") or entry["id"])[:200],
                    context_length=to_int(entry.get("context_length") or top.get("context_length")),
                    prompt_price=_price(pricing.get("prompt")),
                    completion_price=_price(pricing.get("completion")),
                    supported_parameters=[str(p) for p in entry.get("supported_parameters") or []],
                    max_completion_tokens=to_int(top.get("max_completion_tokens")) or None,
                )
            )
        return result

    def key(self) -> KeyInfo:
        """The key's label, credit limit (None: unlimited), what remains of it, and its usage so far."""
        data = self._get("/key").get("data") or {}
        return KeyInfo(
            label=str(data.get("label") or ""),
            limit=to_decimal(data.get("limit")),
            remaining=to_decimal(data.get("limit_remaining")),
            usage=to_decimal(data.get("usage")) or Decimal(0),
            is_free_tier=bool(data.get("is_free_tier")),
        )

    def generation(self, generation_id: str, *, attempts: int | None = None, delay: float = 0.5) -> dict:
        """A generation's stats with its exact cost (``total_cost``). Just after a call it may not be
        recorded yet, so a 404 is retried a few times."""
        attempts = attempts or settings.OPENROUTER_GENERATION_ATTEMPTS
        for attempt in range(attempts):
            try:
                return self._get("/generation", id=generation_id).get("data") or {}
            except OpenRouterError as exc:
                if exc.status != 404 or attempt == attempts - 1:
                    raise
                self.sleep(delay)
        raise AssertionError("unreachable")
