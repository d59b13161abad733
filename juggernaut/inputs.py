"""Input that no store can hold, refused at the edge with the field's name.

PostgreSQL text cannot hold a NUL character, JSON has no infinities, and a column has a range; each
would otherwise surface as a database error (a 500) deep inside a view. The API's JSON parser, the
request guard middleware (query strings and HTML forms) and the websocket consumers all check here.
"""

import json
import math
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser

from juggernaut.errors import HQError

MAX_JSON_DEPTH = 32
BIGINT_MAX = 2**63 - 1


def _reject_constant(name: str) -> float:
    raise HQError("not_finite", f"{name} is not a JSON number: numbers must be finite", status=422)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise HQError("not_finite", f"{text[:40]} is too large: numbers must be finite", status=422)
    return value


def json_depth_exceeds(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the document nests deeper than ``limit`` (checked before parsing, which recurses)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def nul_field(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) holding a NUL character, else None."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            found = nul_field(item, here)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_field(item, f"{path}[{index}]" if path else f"[{index}]")
            if found:
                return found
    return None


def nul_refusal(field: str) -> HQError:
    return HQError(
        "nul_character",
        f"{field} contains a NUL character (\\u0000), which cannot be stored",
        status=422,
        details={"field": field.replace("\x00", "\\u0000")},
    )


def json_strict_loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN/Infinity, numbers that overflow, deep nesting and NUL characters.

    Raises ``HQError`` (422) for those; malformed JSON still raises ``json.JSONDecodeError``.
    """
    if json_depth_exceeds(text):
        raise HQError("too_deep", f"JSON nests deeper than {MAX_JSON_DEPTH} levels", status=422)
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise
        # Python refuses integers of more than 4300 digits: not a number anyone means.
        raise HQError("bad_number", "a number in the body is too long", status=422) from exc
    field = nul_field(value)
    if field:
        raise nul_refusal(field)
    return value


class StrictJSONParser(Parser):
    """django-ninja's parser, with ``json_strict_loads`` for bodies and NUL checks for query strings."""

    def parse_body(self, request: HttpRequest):
        body = json_strict_loads(request.body)
        # Every body this API takes is an object (or null where it is optional). ninja's schemas read
        # attributes off whatever they are given, so `false` or `[1]` would pass as "all defaults".
        if body is not None and not isinstance(body, dict):
            raise HQError(
                "validation_error",
                f"the request body must be a JSON object, not {type(body).__name__}",
                status=422,
            )
        return body

    def parse_querydict(self, data, list_fields, request):
        for key, values in data.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                raise nul_refusal(key)
        return super().parse_querydict(data, list_fields, request)
