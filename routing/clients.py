"""OpenRouter's HTTP API (any OpenAI-compatible server works the same way): chat completions, streamed
or not, the model list, the key's limits and a generation's exact cost.

Pure I/O over ``juggernaut.http`` sessions: no models, typed results, one error class. Every base URL
and timeout is a setting, so tests point the client at a local fake.
"""

import codecs
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from django.conf import settings
from urllib3.exceptions import HTTPError as Urllib3Error

from juggernaut.http import HttpSession, http_session, retry_after_seconds

log = logging.getLogger(__name__)

# Statuses after which the same request may succeed later (the server said so, or it was busy).
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
READ_SIZE = 65536


class OpenRouterError(Exception):
    """A failed call. ``permanent`` says whether repeating the same request could succeed."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
        metadata: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.permanent = permanent
        self.retry_after = retry_after
        self.metadata = metadata or {}

    def __str__(self) -> str:
        where = f" (HTTP {self.status})" if self.status else ""
        return f"{self.code}{where}: {self.message}"


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal | None = None  # USD as the server reported it; None when it did not say

    @classmethod
    def from_json(cls, data: dict | None) -> "Usage | None":
        if not isinstance(data, dict):
            return None
        prompt, completion = _int(data.get("prompt_tokens")), _int(data.get("completion_tokens"))
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=_int(data.get("total_tokens")) or prompt + completion,
            cost=_decimal(data.get("cost")),
        )


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it
    type: str = "function"

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class Completion:
    """One finished (or failed halfway) completion. ``error`` is set when the stream ended in an error."""

    id: str = ""
    model: str = ""
    provider: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    usage: Usage | None = None
    error: OpenRouterError | None = None
    first_token_seconds: float | None = None


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


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _price(value: Any) -> Decimal | None:
    """A per-token price; negative ("-1", as ``openrouter/auto`` lists) means no fixed price."""
    price = _decimal(value)
    return None if price is None or price < 0 else price


def join_surrogates(text: str) -> str:
    """Join UTF-16 surrogate halves that arrived as separate ``\\uXXXX`` escapes in separate fragments."""
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class SSEDecoder:
    """Server-sent events from raw bytes: incremental UTF-8, comments dropped, ``data:`` lines joined.

    Bytes may be cut anywhere (inside a line, inside a multi-byte character); ``feed`` returns the
    data of each complete event.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._data: list[str] = []
        self.comments = 0

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += self._decoder.decode(chunk)
        events: list[str] = []
        while True:
            cut = self._buffer.find("\n")
            if cut < 0:
                return events
            line, self._buffer = self._buffer[:cut].rstrip("\r"), self._buffer[cut + 1 :]
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
            elif line.startswith(":"):
                self.comments += 1  # ": OPENROUTER PROCESSING" keep-alives
            elif line.startswith("data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(" ") else value)
            # event:, id:, retry: carry nothing OpenRouter uses

    def close(self) -> list[str]:
        events = self.feed(b"\n\n") if self._data or self._buffer else []
        return events


class CompletionAssembler:
    """Builds a ``Completion`` from streamed chunks: content deltas, tool calls by ``index``, the final
    usage chunk (empty ``choices``) and a mid-stream ``error``."""

    def __init__(self) -> None:
        self.completion = Completion()
        self._calls: dict[int, dict] = {}

    def add(self, chunk: dict) -> str:
        """Take one chunk; returns its new text content."""
        c = self.completion
        c.id = c.id or str(chunk.get("id") or "")
        c.model = str(chunk.get("model") or c.model)
        c.provider = str(chunk.get("provider") or c.provider)
        usage = Usage.from_json(chunk.get("usage"))
        if usage is not None:
            c.usage = usage
        if isinstance(chunk.get("error"), dict):
            c.error = _error_from_body(chunk["error"], status=None, mid_stream=True)
        text = ""
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                text += piece
            for position, call in enumerate(delta.get("tool_calls") or []):
                self._add_call(call, position)
            if choice.get("finish_reason") is not None:
                c.finish_reason = choice["finish_reason"]
            if choice.get("native_finish_reason") is not None:
                c.native_finish_reason = choice["native_finish_reason"]
        c.content += text
        return text

    def _add_call(self, call: dict, position: int) -> None:
        if not isinstance(call, dict):
            return
        index = call.get("index")
        index = index if isinstance(index, int) else position
        slot = self._calls.setdefault(index, {"id": "", "name": "", "arguments": "", "type": "function"})
        if call.get("id") and not slot["id"]:
            slot["id"] = str(call["id"])  # some providers repeat the id on every fragment
        function = call.get("function") or {}
        if function.get("name"):
            slot["name"] = slot["name"] or str(function["name"])
        if isinstance(function.get("arguments"), str):
            slot["arguments"] += function["arguments"]

    def finish(self) -> Completion:
        c = self.completion
        seen: set[str] = set()
        calls = []
        for index in sorted(self._calls):
            slot = self._calls[index]
            call_id = slot["id"] or f"call_{index}"
            if call_id in seen:  # duplicate ids from a provider: keep them apart
                call_id = f"{call_id}_{index}"
            seen.add(call_id)
            calls.append(ToolCall(call_id, slot["name"], join_surrogates(slot["arguments"]) or "{}"))
        c.tool_calls = calls
        c.content = join_surrogates(c.content)
        # Some providers end a tool call with "stop" or no reason at all.
        if calls and c.finish_reason in (None, "stop"):
            c.finish_reason = "tool_calls"
        if c.error is not None:
            c.finish_reason = "error"
        return c


def _error_from_body(error: Any, *, status: int | None, mid_stream: bool = False, retry_after=None):
    if not isinstance(error, dict):
        error = {"message": str(error)}
    raw_code = error.get("code", status)
    message = str(error.get("message") or "the server reported an error")[:500]
    numeric = raw_code if isinstance(raw_code, int) else (status or 0)
    code = str(raw_code) if raw_code is not None else "error"
    permanent = numeric in (400, 401, 402, 403, 404) and not mid_stream
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
    return OpenRouterError(
        code, message, status=status, permanent=permanent, retry_after=retry_after, metadata=metadata
    )


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
    result = _error_from_body(error, status=response.status_code, retry_after=retry_after)
    result.permanent = response.status_code not in TRANSIENT_STATUSES
    return result


class ChatStream:
    """A streamed completion: iterate for text deltas, then read ``completion``.

    ``cancel()`` may be called from any thread; the reading thread stops within a second (the socket
    is shut down under it). A silence longer than the idle timeout between chunks raises ``timeout``;
    keep-alive comments count as life.
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
        # Chat calls are retried here (POST is not retried by the session); reads use the session's.
        self.chat_session: HttpSession = http_session(max_retries=0)
        self.session: HttpSession = http_session(max_retries=self.max_retries)
        headers = {"HTTP-Referer": settings.OPENROUTER_APP_URL, "X-Title": settings.OPENROUTER_APP_TITLE}
        for s in (self.chat_session, self.session):
            s.headers.update({k: v for k, v in headers.items() if v})
            if self.api_key:
                s.headers["Authorization"] = f"Bearer {self.api_key}"
        self.sleep = time.sleep  # tests can swap this

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

    def chat_stream(self, body: dict) -> ChatStream:
        """Start a streamed completion; errors before the first byte of the stream raise here."""
        started = time.monotonic()
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        return ChatStream(self._post_chat(body, stream=True), started=started)

    def _post_chat(self, body: dict, *, stream: bool) -> requests.Response:
        url = f"{self.base_url}/chat/completions"
        attempt = 0
        while True:
            try:
                response = self.chat_session.post(url, json=body, stream=stream, timeout=self.timeout)
            except requests.ConnectTimeout as exc:
                raise OpenRouterError(
                    "timeout", f"no connection to {self.base_url} within the timeout"
                ) from exc
            except requests.Timeout as exc:
                raise OpenRouterError("timeout", "the server did not answer within the timeout") from exc
            except requests.ConnectionError as exc:
                raise OpenRouterError("unreachable", f"cannot reach {self.base_url}") from exc
            if response.status_code == 200:
                return response
            error = error_from_response(response)
            response.close()
            if error.permanent or attempt >= self.max_retries:
                raise error
            delay = error.retry_after if error.retry_after is not None else 0.5 * 2**attempt
            log.info("chat completion answered %s; retry %d in %.1fs", error.status, attempt + 1, delay)
            self.sleep(delay)
            attempt += 1

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
                    context_length=_int(entry.get("context_length") or top.get("context_length")),
                    prompt_price=_price(pricing.get("prompt")),
                    completion_price=_price(pricing.get("completion")),
                    supported_parameters=[str(p) for p in entry.get("supported_parameters") or []],
                    max_completion_tokens=_int(top.get("max_completion_tokens")) or None,
                )
            )
        return result

    def key(self) -> KeyInfo:
        """The key's label, credit limit (None: unlimited), what remains of it, and its usage so far."""
        data = self._get("/key").get("data") or {}
        return KeyInfo(
            label=str(data.get("label") or ""),
            limit=_decimal(data.get("limit")),
            remaining=_decimal(data.get("limit_remaining")),
            usage=_decimal(data.get("usage")) or Decimal(0),
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
