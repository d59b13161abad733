"""The chat's tool registry: every ``@tool`` function in ``<app>/tools.py``, its JSON schema, and calling it.

Schemas (OpenAI's ``{"type": "function", "function": {...}}``) come from the type hints and the
docstring: its first paragraph describes the tool, and ``name: text`` lines after it describe the
parameters. Arguments the model sends are checked against the same hints before the call, so a
wrong argument is an error the model reads, not a crash.
"""

import hashlib
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from chat.apps import TASK_SOURCE
from juggernaut.discovery import app_modules
from juggernaut.errors import HQError
from juggernaut.features import feature_enabled
from juggernaut.inputs import json_strict_loads
from juggernaut.tools import ToolSpec, acting_as, tool_spec

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
PARAM_LINE_RE = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*:\s*(.+)$")


# A tool call id is stored (ToolExecution.tool_call_id) and sent back with the call's result.
MAX_CALL_ID = 100
REFUSED_ID_PREFIX = "refused-"


class ToolArgumentError(ValueError):
    """The model's arguments do not fit the tool's signature."""


def arguments_parse(raw: str) -> tuple[dict, str]:
    """``(arguments, "")`` from the model's JSON text, or ``({}, why not)``: the model reads why.
    Arguments are model output, so untrusted: non-finite numbers (``1e999``, ``Infinity``, ``NaN``),
    deep nesting and NUL characters are refused like malformed JSON, never stored."""
    try:
        value = json_strict_loads(raw or "{}")
    except HQError as exc:
        return {}, f"the arguments are refused: {exc.message}"
    except ValueError:
        return {}, "the arguments are not valid JSON"
    return (value, "") if isinstance(value, dict) else ({}, "the arguments must be a JSON object")


def calls_checked(calls: list[dict]) -> list[dict]:
    """The model's tool calls as the conversation stores them. A call whose id the store cannot hold
    (not a string, or over MAX_CALL_ID characters) gets a short id marked refused instead, so it is
    answered, as a refused call the model reads, under an id the conversation can carry."""
    checked = []
    for index, call in enumerate(calls):
        raw = call.get("id")
        if not isinstance(raw, str) or len(raw) > MAX_CALL_ID:
            digest = hashlib.sha256(repr(raw).encode()).hexdigest()[:16]
            call = {**call, "id": f"{REFUSED_ID_PREFIX}{index}-{digest}"}
        checked.append(call)
    return checked


def call_refusal(call: dict) -> str:
    """Why a stored call is refused before anything looks at its tool, or ""."""
    if call["id"].startswith(REFUSED_ID_PREFIX):
        return f"the tool call's id is over {MAX_CALL_ID} characters; the call was refused, not run"
    return ""


@dataclass(frozen=True)
class Tool:
    name: str
    func: Callable
    spec: ToolSpec
    app: str
    description: str
    parameters: dict

    @property
    def safe(self) -> bool:
        return self.spec.safe

    def schema(self) -> dict:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def call(self, arguments: dict, *, user) -> Any:
        """Check the arguments against the signature, then run the tool as ``user``."""
        with acting_as(user, source=TASK_SOURCE):
            return self.func(**self.check(arguments))

    def check(self, arguments: dict) -> dict:
        if not isinstance(arguments, dict):
            raise ToolArgumentError("the arguments must be a JSON object")
        params = inspect.signature(self.func).parameters
        hints = typing.get_type_hints(self.func)
        unknown = sorted(set(arguments) - set(params))
        if unknown:
            raise ToolArgumentError(
                f"unknown argument(s) {', '.join(unknown)}; {self.name} takes {_names(params)}"
            )
        for name, param in params.items():
            if name not in arguments and param.default is inspect.Parameter.empty:
                raise ToolArgumentError(f"missing required argument {name}")
            if name in arguments and not _fits(arguments[name], hints.get(name, Any)):
                raise ToolArgumentError(f"argument {name} must be {_words(hints.get(name, Any))}")
        return arguments


def _names(params) -> str:
    return ", ".join(params) or "no arguments"


def _parts(hint) -> tuple[Any, tuple]:
    return typing.get_origin(hint), typing.get_args(hint)


def _fits(value: Any, hint) -> bool:
    origin, args = _parts(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if hint is list or origin is list:
        return (
            isinstance(value, list) and all(_fits(v, args[0]) for v in value)
            if args
            else isinstance(value, list)
        )
    return True


def _words(hint) -> str:
    return (
        json_type(hint).get("type", "a value")
        if "enum" not in json_type(hint)
        else ("one of " + ", ".join(repr(v) for v in json_type(hint)["enum"]))
    )


def json_type(hint) -> dict:
    """The JSON schema of a type hint (the types tools use: str, int, float, bool, list, dict,
    Literal and ``X | None``)."""
    origin, args = _parts(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return json_type(rest[0]) if len(rest) == 1 else {"anyOf": [json_type(a) for a in rest]}
    if origin is Literal:
        return {"type": "string" if all(isinstance(a, str) for a in args) else "integer", "enum": list(args)}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}
    if hint in simple:
        return {"type": simple[hint]}
    if origin is dict:
        return {"type": "object"}
    if hint is list or origin is list:
        return {"type": "array", "items": json_type(args[0])} if args else {"type": "array"}
    return {}


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """``(description, {param: text})`` from a tool's docstring."""
    blocks = re.split(r"\n\s*\n", inspect.cleandoc(doc or ""))
    params: dict[str, str] = {}
    description: list[str] = []
    for block in blocks:
        lines = block.splitlines()
        if lines and all(PARAM_LINE_RE.match(line) for line in lines):
            for line in lines:
                name, text = PARAM_LINE_RE.match(line).groups()
                params[name] = text.strip()
        else:
            description.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(d for d in description if d), params


def tool_build(func: Callable, spec: ToolSpec, app: str) -> Tool:
    """The registry entry of one tool function."""
    description, docs = parse_docstring(func.__doc__ or "")
    hints = typing.get_type_hints(func)
    properties: dict = {}
    required: list[str] = []
    for name, param in inspect.signature(func).parameters.items():
        prop = json_type(hints.get(name, Any))
        if name in docs:
            prop["description"] = docs[name]
        if param.default is inspect.Parameter.empty:
            required.append(name)
        elif param.default is not None:
            prop["default"] = param.default
        properties[name] = prop
    parameters = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return Tool(func.__name__, func, spec, app, description or func.__name__, parameters)


@cache
def registry() -> dict[str, Tool]:
    """Every tool of every installed app, by name (a name two apps share gets its app's label first)."""
    found: list[Tool] = []
    for config, module in app_modules("tools"):
        for _, func in inspect.getmembers(module, inspect.isfunction):
            spec = tool_spec(func)
            if spec is not None and func.__module__ == module.__name__:
                found.append(tool_build(func, spec, config.label))
    counts: dict[str, int] = {}
    for t in found:
        counts[t.name] = counts.get(t.name, 0) + 1
    tools: dict[str, Tool] = {}
    for t in found:
        name = t.name if counts[t.name] == 1 else f"{t.app}_{t.name}"
        if NAME_RE.match(name):
            tools[name] = Tool(name, t.func, t.spec, t.app, t.description, t.parameters)
    return tools


def tool_schemas() -> list[dict]:
    """The tools offered to the model: those of apps switched on (the registry is built once)."""
    return [t.schema() for t in registry().values() if feature_enabled(t.app)]


def tool_get(name: str) -> Tool | None:
    found = registry().get(name)
    return found if found is not None and feature_enabled(found.app) else None
