"""From log records to events: levels, errors, HTTP status, JSON lines and folded stack traces.

A record is one line as a source delivers it (with the severity and attributes the source knows). A
multi-line stack trace arrives as many records; ``TraceFolder`` joins them into one event, whether
they came in one record with newlines or one record per line.
"""

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from logscrawler.header import LEVELS, split_header

ERROR_LEVELS = {"error", "critical"}
# JSON from outside nests at most this deep: deeper input is refused before anything recursive
# (json.dumps, the database's JSON functions, redaction) walks it.
JSON_MAX_DEPTH = 32
# pino / bunyan numeric levels
_NUMERIC_LEVELS = {10: "debug", 20: "debug", 30: "info", 40: "warning", 50: "error", 60: "critical"}
_MESSAGE_KEYS = ("message", "msg", "text", "log")
_LEVEL_KEYS = ("level", "severity", "levelname", "log.level", "lvl")
_STATUS_KEYS = ("status", "status_code", "statusCode", "httpStatus", "http_status", "response_status")

# "GET /x HTTP/1.1" 502 1234, status=500, status: 503, HTTP/1.1 500
_HTTP_STATUS = re.compile(
    r'"\s([1-5]\d\d)\s|\bstatus(?:_code|Code)?["\']?\s*+[=:]\s*+["\']?([1-5]\d\d)\b|\bHTTP/\d(?:\.\d)?"?\s([1-5]\d\d)\b'
)
_LOGFMT_MSG = re.compile(r'(?:^|\s)(?:msg|message)=(?:"((?:[^"\\]++|\\.)*+)"|(\S++))')
# a key starts where no key character precedes it: one scan per key, never one per character
_LOGFMT_PAIR = re.compile(r'(?<![\w.\-])([\w.\-]++)=("(?:[^"\\]++|\\.)*+"|\S*+)')
# Words that make a line an error wherever its level is missing or wrong.
_ERROR_WORDS = re.compile(
    r"^(Traceback \(most recent call last\)|panic: |Exception in thread |Unhandled|Uncaught|FATAL\b|"
    r"[\w.$]*(Error|Exception)\b:?)"
)


@dataclass(slots=True)
class Event:
    text: str  # as delivered (JSON: its message and stack); several lines once a trace is folded
    message: str  # the first line without its header: what an operator reads
    level: str | None = None
    http_status: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    lines: int = 1
    unparsable: bool = False  # its parse ran over budget: kept whole, fingerprinted by nothing but that

    @property
    def is_error(self) -> bool:
        if self.level in ERROR_LEVELS:
            return True
        if self.unparsable:  # nothing read from its text: only its source's severity counts
            return False
            return True
        if self.http_status is not None and self.http_status >= 500:
            return True
        return bool(_ERROR_WORDS.match(self.text.lstrip()))

    @property
    def headline(self) -> str:
        """The line an operator reads first: the exception line of a Python trace, else the message."""
        if "Traceback (most recent call last)" in self.text:
            lines = self.text.splitlines()
            return next((line for line in reversed(lines) if line and not line[0].isspace()), self.message)
        return self.message


def normalise_level(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return _NUMERIC_LEVELS.get(int(value) // 10 * 10)
    return LEVELS.get(str(value).strip().lower())


def _dig(data: dict, dotted: str) -> Any:
    if dotted in data:
        return data[dotted]
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _status(value: Any) -> int | None:
    try:
        status = int(value)
    except (TypeError, ValueError):
        return None
    return status if 100 <= status <= 599 else None


class JSONTooDeep(ValueError):
    pass


def _finite(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None


def json_depth(value: Any) -> int:
    """How deep a decoded JSON value nests (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def json_loads_bounded(text: str | bytes, *, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """``json.loads`` for text from outside: non-finite numbers (``Infinity``, ``NaN``, ``1e999``)
    become null, which every database takes; nesting deeper than ``max_depth`` raises ``JSONTooDeep``
    (a ``ValueError``), and so does nesting deep enough to exhaust the decoder's recursion."""
    try:
        data = json.loads(text, parse_constant=lambda _name: None, parse_float=_finite)
    except RecursionError as exc:
        raise JSONTooDeep(f"JSON nested deeper than {max_depth} levels") from exc
    if json_depth(data) > max_depth:
        raise JSONTooDeep(f"JSON nested deeper than {max_depth} levels")
    return data


def parse_record(text: str, *, severity: str | None = None, attributes: dict | None = None) -> Event:
    """One record: a JSON object or a plain line, with the severity its source reported, if any."""
    attributes = dict(attributes or {})
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            data = json_loads_bounded(stripped)
        except ValueError:  # not JSON, or too deep to read as such: a plain line
            data = None
        if isinstance(data, dict):
            return _parse_json(data, severity, attributes)
    text = text.rstrip()
    first = text.split("\n", 1)[0]
    logfmt = _LOGFMT_MSG.search(first) if "=" in first else None
    if logfmt:
        return _parse_logfmt(text, first, logfmt, severity, attributes)
    # an indented line continues a trace: its indentation is kept for the folder
    header = split_header(first) if first[:1].strip() else None
    level = normalise_level(severity) or (header.level if header else None)
    status = _status(attributes.get("httpStatus") or attributes.get("status"))
    if status is None:
        match = _HTTP_STATUS.search(first)
        status = _status(next(g for g in match.groups() if g)) if match else None
    message = (header.message if header else first.strip()) or first.strip()
    return Event(text=text, message=message, level=level, http_status=status, attributes=attributes)


def _parse_logfmt(text: str, first: str, match: re.Match, severity: str | None, attributes: dict) -> Event:
    """``level=error msg="db timeout" status=503``: Go's and many shippers' key=value lines."""
    pairs = {k: v.strip('"') for k, v in _LOGFMT_PAIR.findall(first)}
    message = (match.group(1) or match.group(2) or "").replace('\\"', '"')
    level = normalise_level(severity) or normalise_level(
        pairs.get("level") or pairs.get("lvl") or pairs.get("severity")
    )
    status = next((s for k in _STATUS_KEYS if (s := _status(pairs.get(k)))), None)
    rest = text.split("\n", 1)[1] if "\n" in text else ""
    return Event(
        text=f"{message}\n{rest}" if rest else message,
        message=message,
        level=level,
        http_status=status,
        attributes={**{k: v for k, v in pairs.items() if k not in ("msg", "message")}, **attributes},
    )


def _parse_json(data: dict, severity: str | None, attributes: dict) -> Event:
    message = next((str(data[k]) for k in _MESSAGE_KEYS if isinstance(data.get(k), str | int | float)), "")
    level = normalise_level(severity) or next(
        (lvl for k in _LEVEL_KEYS if (lvl := normalise_level(_dig(data, k)))), None
    )
    status = next((s for k in _STATUS_KEYS if (s := _status(_dig(data, k)))), None) or _status(
        _dig(data, "http.status_code") or _dig(data, "res.statusCode")
    )
    error = data.get("error") or data.get("err")
    stack = _dig(data, "error.stack") or _dig(data, "err.stack") or data.get("stack") or data.get("exc_info")
    if isinstance(stack, str) and stack.strip():
        # a stack already starts with "Type: message"; keep our message only when it says more
        message = stack.rstrip() if not message or message in stack else f"{message}\n{stack.rstrip()}"
    elif isinstance(error, str) and error and error not in message:
        message = f"{message}: {error}" if message else error
    if not message:
        message = json.dumps(data, sort_keys=True)[:2000]
    extra = {
        k: v for k, v in data.items() if k not in (*_MESSAGE_KEYS, *_LEVEL_KEYS, "stack", "time", "timestamp")
    }
    return Event(
        text=message,
        message=message.split("\n", 1)[0],
        level=level,
        http_status=status,
        attributes={**extra, **attributes},
    )


# Lines that continue the event before them.
_CONTINUATION = re.compile(
    r"^(\s++\S|Caused by: |Suppressed: |\.\.\. \d+ more|During handling of the above exception|"
    r"The above exception was the direct cause|goroutine \d+ \[|created by |exit status \d+$|"
    # PostgreSQL's diagnostics under an exception (psycopg, node-postgres); the brace closing a Node
    # error's properties or its [cause] block
    r"(?:DETAIL|HINT|CONTEXT|QUERY|STATEMENT|WHERE|LINE \d++):\s|[}\]]{1,3}[,;]?$)"
)
# A Java exception line under a one-line heading ("Error: request 7 failed" then the exception)
_JAVA_EXCEPTION = re.compile(r"^(?:[a-z][\w$]*+\.)++[A-Z][\w$]*?(?:Exception|Error|Throwable)(?::\s|$)")
_CHAIN_HEADINGS = ("During handling of the above exception", "The above exception was the direct cause")
_GO_CALL_HEAD = re.compile(r"[\w./\-*()]++")
_PY_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*+(: .*)?$")


def go_call(line: str) -> bool:
    """``main.(*T).run(0xc000, ...)``: Go's call characters up to a "(", and the line ends with ")"."""
    if "\n" in line or not line.endswith(")"):
        return False
    head = _GO_CALL_HEAD.match(line)
    return head is not None and "(" in line[1 : head.end()]


class TraceFolder:
    """Joins the records of one stream that belong to one multi-line event (stack traces).

    Feed records in order; completed events come out as soon as a record starts a new event, and
    ``flush`` returns the last one. Keep one folder per service: lines of two services never mix.
    """

    # "message, then its traceback" only when the traceback follows within this many seconds
    TRACEBACK_AFTER_MESSAGE_SECONDS = 0.5

    def __init__(self) -> None:
        self._open: Event | None = None
        self._open_at: datetime | None = None
        self._at: datetime | None = None
        self._python_awaits_exception = False
        self._python = False  # the open event holds a Python traceback
        self._chained = False  # ... whose last line says another traceback follows
        self._go = False

    def feed(self, event: Event, at: datetime | None = None) -> list[Event]:
        """Add the next record (``at``: when it was logged, if known); returns the events it completes."""
        self._at = at
        if self._open is not None and self._continues(event.text):
            self._append(event)
            return []
        done = self.flush()
        self._open, self._open_at = event, at
        lines = event.text.splitlines()
        self._python_awaits_exception = bool(lines) and lines[-1].startswith(
            ("Traceback (most recent call last)", "  File ")
        )
        self._python = "Traceback (most recent call last)" in event.text
        self._chained = False
        self._go = bool(lines) and (lines[0].startswith("panic: ") or "http: panic serving " in lines[0])
        return done

    @property
    def open_event(self) -> Event | None:
        """The event the next record may still continue."""
        return self._open

    def flush(self) -> list[Event]:
        done, self._open = self._open, None
        return [done] if done is not None else []

    def _continues(self, text: str) -> bool:
        if _CONTINUATION.match(text):
            return True
        if text == "":  # blank lines inside a Python chain or a Go dump
            return self._python or self._go
        if self._chained and text.startswith("Traceback (most recent call last)"):
            return True
        if self._within_heading_gap() and self._open.lines == 1 and _JAVA_EXCEPTION.match(text):
            return True
        if text.startswith("[signal ") and self._go:
            return True
        if text.startswith("Traceback (most recent call last)"):
            # logging.exception(): the message line, then its traceback
            return self._within_heading_gap() and self._open.lines == 1 and "Traceback" not in self._open.text
        if self._python_awaits_exception and _PY_EXCEPTION_LINE.match(text):
            return True
        return self._go and (text == "" or go_call(text))

    def _within_heading_gap(self) -> bool:
        return (
            self._at is None
            or self._open_at is None
            or abs((self._at - self._open_at).total_seconds()) <= self.TRACEBACK_AFTER_MESSAGE_SECONDS
        )

    def _append(self, event: Event) -> None:
        open_, text = self._open, event.text
        open_.text = f"{open_.text}\n{text}"
        open_.lines += 1
        if event.level in ERROR_LEVELS and open_.level not in ERROR_LEVELS:
            open_.level = event.level
        if text.startswith(_CHAIN_HEADINGS):
            self._chained = True
        elif text.startswith("Traceback (most recent call last)"):
            self._python, self._chained = True, False
        elif text.startswith("goroutine "):
            self._go = True
        if text.startswith(("Traceback (most recent call last)", "  File ")):
            self._python_awaits_exception = True
        elif self._python_awaits_exception and text and not text[:1].isspace():
            self._python_awaits_exception = text.startswith(("During handling", "The above exception"))


def fold(events: Iterable[Event]) -> Iterator[Event]:
    """Fold one stream's events (stack traces delivered line by line become one event)."""
    folder = TraceFolder()
    for event in events:
        yield from folder.feed(event)
    yield from folder.flush()
