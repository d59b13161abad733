"""A fake OpenRouter on a loopback port: scripted conversations in OpenRouter's wire format, quirks included.

Script the next answers with ``fake.script(turn, …)``; each ``POST /chat/completions`` takes the next
turn (or ``fake.default`` when the script is empty). A turn is a ``Reply`` (streamed as SSE when the
request asks for ``stream``, else one JSON body), an ``Fail`` (a JSON error before any stream) or a
``Stall`` (headers, then silence). The fake reproduces:

- ``: OPENROUTER PROCESSING`` keep-alive comments and a slow first token;
- content and tool-call arguments cut into fragments mid-token, and the bytes of the stream cut
  mid-UTF-8 character (``byte_split``), arguments escaped as ASCII so emoji arrive as surrogate halves;
- tool calls finishing with ``stop`` or null, ids repeated on every fragment or left empty;
- the usage chunk (``choices: []``, ``usage.cost``) before ``[DONE]``;
- an error chunk mid-stream (HTTP 200, top-level ``error``, ``finish_reason: "error"``), with or
  without a usage chunk after it;
- a stream that falls silent or whose connection is cut partway (``silent_after``, ``cut_after``);
- JSON errors (400/401/402/404/408/429/502/503) with ``Retry-After``;
- ``GET /models`` (prices as strings, ``openrouter/auto`` at "-1"), ``GET /key``, and
  ``GET /generation?id=`` answering 404 until the generation is "recorded".
"""

import contextlib
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeServer, QuietHandler

PROCESSING = b": OPENROUTER PROCESSING\n\n"


@dataclass
class Tool:
    name: str
    arguments: str
    id: str | None = None  # None: generated; "" : sent empty (a provider quirk)
    repeat_id: bool = False  # send the id again on every fragment


@dataclass
class Reply:
    text: str = ""
    model: str = "openai/gpt-4o-mini"
    provider: str = "OpenAI"
    tools: list[Tool] = field(default_factory=list)
    finish_reason: str | None = "stop"  # tool calls: "tool_calls" normally, "stop" or None as quirks
    native_finish_reason: str | None = None
    prompt_tokens: int = 12
    completion_tokens: int | None = None  # default: derived from the text
    cost: Decimal | None = Decimal("0.000123")
    usage: bool = True  # send the usage chunk
    fragment: int = 3  # characters per content/arguments fragment
    byte_split: int = 0  # cut the stream's bytes into pieces of this size (0: one write per event)
    keepalives: int = 0  # ": OPENROUTER PROCESSING" comments before the first token
    first_token_delay: float = 0.0  # spread over the keep-alives (or silence when there are none)
    chunk_delay: float = 0.0  # between events
    error_after: int | None = None  # content fragments before a mid-stream error chunk
    error_code: int | str = "server_error"
    error_message: str = "Provider disconnected unexpectedly"
    done: bool = True  # send [DONE]
    silent_after: int | None = None  # events sent before the server falls silent for ``silence`` seconds
    silence: float = 3.0
    cut_after: int | None = None  # events sent before the connection is cut (no end of the stream)
    generation_id: str | None = None
    ascii: bool = False  # escape non-ASCII as \\uXXXX (needed for surrogate halves split across fragments)
    headers_delay: float = 0.0  # seconds before the status line (a reasoning model, a queued provider)


@dataclass
class Fail:
    status: int
    message: str = "error"
    code: int | str | None = None  # default: the status
    retry_after: str | None = None
    metadata: dict | None = None


@dataclass
class Stall:
    seconds: float
    keepalive_every: float = 0.0  # >0: send comments while stalling


DEFAULT_MODELS = [
    {
        "id": "openrouter/auto",
        "name": "Auto Router",
        "context_length": 2000000,
        "pricing": {"prompt": "-1", "completion": "-1"},
        "supported_parameters": ["tools", "tool_choice", "max_tokens", "temperature"],
        "top_provider": {"context_length": None, "max_completion_tokens": None},
    },
    {
        "id": "openai/gpt-4o",
        "name": "OpenAI: GPT-4o",
        "context_length": 128000,
        "pricing": {"prompt": "0.0000025", "completion": "0.00001", "request": "0", "image": "0.003613"},
        "supported_parameters": ["tools", "tool_choice", "max_tokens", "temperature", "response_format"],
        "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
    },
    {
        "id": "openai/gpt-4o-mini",
        "name": "OpenAI: GPT-4o-mini",
        "context_length": 128000,
        "pricing": {"prompt": "0.00000015", "completion": "0.0000006", "request": "0"},
        "supported_parameters": ["tools", "tool_choice", "max_tokens", "temperature"],
        "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
    },
    {
        "id": "meta-llama/llama-3.1-8b-instruct",
        "name": "Meta: Llama 3.1 8B Instruct",
        "context_length": 131072,
        "pricing": {"prompt": "0.00000002", "completion": "0.00000003"},
        "supported_parameters": ["max_tokens", "temperature"],
        "top_provider": {"context_length": 131072, "max_completion_tokens": 8192},
    },
]


class FakeOpenRouter:
    """Use as a context manager; ``url`` is the base URL to give the client (``…/api/v1``)."""

    def __init__(self) -> None:
        self.turns: list = []
        self.default: Reply | Fail | Stall = Reply(text="Hello from the fake.")
        self.requests: list[dict] = []
        self.models = [dict(m) for m in DEFAULT_MODELS]
        self.key = {"label": "sk-or-v1-abc...xyz", "limit": 20.0, "limit_remaining": 17.5, "usage": 2.5}
        self.api_key = "sk-or-test"
        self.generations: dict[str, dict] = {}
        self.generation_404s: dict[str, int] = {}
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self.server = FakeServer(self._handler())
        self.url = self.server.url + "/api/v1"

    def __enter__(self) -> "FakeOpenRouter":
        self.server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)

    def script(self, *turns) -> "FakeOpenRouter":
        with self.lock:
            self.turns.extend(turns)
        return self

    def next_turn(self, body: dict | None = None):
        """The next scripted turn, else the default (a callable default picks one by request body)."""
        with self.lock:
            if self.turns:
                return self.turns.pop(0)
        return self.default(body or {}) if callable(self.default) else self.default

    def chat_bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def _handler(self):
        fake = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, as from a real server

            def handle(self) -> None:
                with contextlib.suppress(ConnectionError, TimeoutError):  # a client that went away
                    super().handle()

            def do_GET(self) -> None:
                fake._get(self)

            def do_POST(self) -> None:
                fake._post(self)

        return Handler

    # --- plumbing -------------------------------------------------------------------------------

    def _record(self, h, body) -> None:
        with self.lock:
            self.requests.append({"path": h.path, "headers": dict(h.headers), "body": body})

    def _json(self, h, status: int, data, headers: dict | None = None) -> None:
        raw = json.dumps(data).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw)

    def _authorised(self, h) -> bool:
        if h.headers.get("Authorization") == f"Bearer {self.api_key}":
            return True
        self._json(h, 401, {"error": {"code": 401, "message": "No auth credentials found"}})
        return False

    def _get(self, h) -> None:
        self._record(h, None)
        parts = urlsplit(h.path)
        path = parts.path.removeprefix("/api/v1")
        if path == "/models":
            self._json(h, 200, {"data": self.models})
        elif path == "/key" and self._authorised(h):
            self._json(h, 200, {"data": self.key})
        elif path == "/generation" and self._authorised(h):
            gen_id = (parse_qs(parts.query).get("id") or [""])[0]
            with self.lock:
                pending = self.generation_404s.get(gen_id, 0)
                if pending:
                    self.generation_404s[gen_id] = pending - 1
            if pending or gen_id not in self.generations:
                self._json(h, 404, {"error": {"code": 404, "message": f"Generation {gen_id} not found"}})
            else:
                self._json(h, 200, {"data": self.generations[gen_id]})
        elif path not in ("/key", "/generation"):
            self._json(h, 404, {"error": {"code": 404, "message": "Not Found"}})

    def _post(self, h) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        try:
            body = json.loads(h.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        self._record(h, body)
        if not urlsplit(h.path).path.endswith("/chat/completions"):
            self._json(h, 404, {"error": {"code": 404, "message": "Not Found"}})
            return
        if not self._authorised(h):
            return
        if not isinstance(body, dict) or not body.get("messages"):
            self._json(h, 400, {"error": {"code": 400, "message": "messages is required"}})
            return
        turn = self.next_turn(body)
        if getattr(turn, "headers_delay", 0):
            time.sleep(turn.headers_delay)
        if isinstance(turn, Fail):
            headers = {"Retry-After": turn.retry_after} if turn.retry_after else {}
            error = {"code": turn.code if turn.code is not None else turn.status, "message": turn.message}
            if turn.metadata:
                error["metadata"] = turn.metadata
            self._json(h, turn.status, {"error": error}, headers)
        elif isinstance(turn, Stall):
            self._start_stream(h)
            deadline = time.monotonic() + turn.seconds
            try:
                while time.monotonic() < deadline:
                    step = turn.keepalive_every or 0.05
                    time.sleep(min(step, max(deadline - time.monotonic(), 0)))
                    if turn.keepalive_every:
                        self._chunk(h, PROCESSING)
            except OSError:
                return
            self._end_stream(h)
        elif body.get("stream"):
            self._stream(h, turn, body)
        else:
            self._json(h, 200, self._whole(turn, body))

    def _gen_id(self, turn: Reply) -> str:
        return turn.generation_id or f"gen-{next(self._ids)}-fake"

    def _completion_tokens(self, turn: Reply) -> int:
        if turn.completion_tokens is not None:
            return turn.completion_tokens
        return max(1, len(turn.text) // 4 + sum(len(t.arguments) // 4 for t in turn.tools))

    def _usage(self, turn: Reply) -> dict:
        completion = self._completion_tokens(turn)
        usage = {
            "prompt_tokens": turn.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": turn.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        if turn.cost is not None:
            usage["cost"] = float(turn.cost)
        return usage

    def _whole(self, turn: Reply, body: dict) -> dict:
        gen_id = self._gen_id(turn)
        message: dict = {"role": "assistant", "content": turn.text or None}
        if turn.tools:
            message["tool_calls"] = [
                {
                    "id": t.id or f"call_{i}",
                    "type": "function",
                    "function": {"name": t.name, "arguments": t.arguments},
                }
                for i, t in enumerate(turn.tools)
            ]
        answer = {
            "id": gen_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": turn.model,
            "provider": turn.provider,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": turn.finish_reason,
                    "native_finish_reason": turn.native_finish_reason or turn.finish_reason,
                }
            ],
        }
        if turn.usage:
            answer["usage"] = self._usage(turn)
        return answer

    # --- streaming ------------------------------------------------------------------------------

    def _start_stream(self, h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

    def _chunk(self, h, data: bytes) -> None:
        h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        h.wfile.flush()

    def _end_stream(self, h) -> None:
        try:
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except OSError:
            pass

    def _stream(self, h, turn: Reply, body: dict) -> None:
        gen_id = self._gen_id(turn)
        base = {
            "id": gen_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": turn.model,
            "provider": turn.provider,
        }

        def event(choices, **extra) -> bytes:
            # Raw UTF-8 by default, as OpenRouter sends it; ``ascii`` escapes it (emoji become two halves).
            data = json.dumps({**base, "choices": choices, **extra}, ensure_ascii=turn.ascii)
            return b"data: " + data.encode() + b"\n\n"

        events: list[bytes] = []
        pieces = [turn.text[i : i + turn.fragment] for i in range(0, len(turn.text), turn.fragment)]
        if not pieces:
            events.append(
                event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            )
        errored = False
        for n, piece in enumerate(pieces):
            if turn.error_after is not None and n == turn.error_after:
                errored = True
                break
            delta = {"role": "assistant", "content": piece} if n == 0 else {"content": piece}
            events.append(event([{"index": 0, "delta": delta, "finish_reason": None}]))
        if not errored:
            for index, tool in enumerate(turn.tools):
                tool_id = f"call_{gen_id}_{index}" if tool.id is None else tool.id
                for k, frag in enumerate(_fragments(tool.arguments, turn.fragment)):
                    call: dict = {"index": index, "function": {"arguments": frag}}
                    if k == 0 or tool.repeat_id:
                        call.update({"id": tool_id, "type": "function"})
                    if k == 0:
                        call["function"]["name"] = tool.name
                    events.append(
                        event([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}])
                    )
            if turn.error_after is not None and turn.error_after >= len(pieces):
                errored = True
        if errored:
            code = turn.error_code
            events.append(
                event(
                    [
                        {
                            "index": 0,
                            "delta": {"content": ""},
                            "finish_reason": "error",
                            "native_finish_reason": "error",
                        }
                    ],
                    error={"code": code, "message": turn.error_message},
                )
            )
        else:
            events.append(
                event(
                    [
                        {
                            "index": 0,
                            "delta": {},
                            "finish_reason": turn.finish_reason,
                            "native_finish_reason": turn.native_finish_reason or turn.finish_reason,
                        }
                    ]
                )
            )
        if turn.usage:
            events.append(event([], usage=self._usage(turn)))
        if turn.done:
            events.append(b"data: [DONE]\n\n")
        if turn.cost is not None:
            with self.lock:
                self.generations.setdefault(
                    gen_id, {"id": gen_id, "total_cost": float(turn.cost), "model": turn.model}
                )
        try:
            self._start_stream(h)
            for _ in range(turn.keepalives):
                self._chunk(h, PROCESSING)
                time.sleep(turn.first_token_delay / max(turn.keepalives, 1))
            if not turn.keepalives and turn.first_token_delay:
                time.sleep(turn.first_token_delay)
            stream = b"".join(events)
            if turn.byte_split:
                for i in range(0, len(stream), turn.byte_split):
                    self._chunk(h, stream[i : i + turn.byte_split])
            else:
                for n, data in enumerate(events):
                    if n == turn.cut_after:
                        h.close_connection = True
                        return
                    if n == turn.silent_after:
                        time.sleep(turn.silence)
                    self._chunk(h, data)
                    if turn.chunk_delay:
                        time.sleep(turn.chunk_delay)
            self._end_stream(h)
        except OSError:  # the client went away (cancelled): nothing more to send
            return


ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}|\\.|.", re.S)


def _fragments(arguments: str, size: int) -> list[str]:
    """Cut arguments every ``size`` escaped characters of their JSON form, so an emoji's two UTF-16
    halves (``\\ud83d`` ``\\ude80``) can land in different fragments, as some providers send them."""
    atoms = ESCAPE.findall(json.dumps(arguments)[1:-1])
    groups = ["".join(atoms[i : i + size]) for i in range(0, len(atoms), size)] or [""]
    return [json.loads(f'"{g}"') for g in groups]
