"""OpenRouter's answers as data, with no I/O: the typed results, the one error class, the server-sent
events decoder and the assembler that turns streamed chunks (or a whole answer) into a ``Completion``.

``routing.clients`` does the HTTP and re-exports these names, so callers import from either.
"""

import codecs
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from juggernaut.redaction import scrub_certain, scrub_payload


class OpenRouterError(Exception):
    """A failed call. ``permanent`` says whether repeating the same request could succeed.

    The message and metadata are often the provider's own text, which may quote the API key: both are
    scrubbed here, before any page, usage row, event or log line sees them."""

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
        message = scrub_certain(str(message))
        super().__init__(message)
        self.code = scrub_certain(code) if isinstance(code, str) else code
        self.message = message
        self.status = status
        self.permanent = permanent
        self.retry_after = retry_after
        self.metadata = scrub_payload(metadata or {})

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
        prompt, completion = to_int(data.get("prompt_tokens")), to_int(data.get("completion_tokens"))
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=to_int(data.get("total_tokens")) or prompt + completion,
            cost=to_decimal(data.get("cost")),
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


def to_int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def to_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


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
            c.error = error_from_body(chunk["error"], status=None, mid_stream=True)
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


def error_from_body(error: Any, *, status: int | None, mid_stream: bool = False, retry_after=None):
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
