"""Chat tools, as apps declare them: plain typed functions with docstrings, marked by ``@tool``.

Apps put them in ``<app>/tools.py``; the chat app finds those modules with
``juggernaut.discovery.app_modules("tools")`` and builds their JSON schemas from the type hints and
docstrings. The decorator only records what the schema cannot say:

- ``safe``: a read-only tool runs at once; an unsafe one (it changes something) waits for the
  operator's approval in the chat;
- ``per_run``: how many times one chat run may call it (None: no limit); a call past that is refused
  and the model reads why.

The rule every tool follows, because the model's words may come from a log line or a repository: a
tool that changes something or queues work is unsafe; a safe tool that reaches outside the HQ (an
external API, a check that calls one) carries a ``per_run`` limit; only a tool that just reads the
HQ's own database is safe without one. Each tool's docstring says which, and why.
- ``volatile``: argument keys whose values change between otherwise equal calls (a timestamp, a
  random id), left out when repeated calls are compared.

A tool acts as the chat session's owner: ``acting_as(user)`` sets who that is while it runs, and the
tool asks ``tool_actor()`` (the name history rows use) or ``tool_user()``, then goes through the same
services and checks an operator's action does.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from juggernaut.auth import actor_of, session_principal
from juggernaut.errors import HQError

ATTRIBUTE = "__hq_tool__"

_user: ContextVar[Any] = ContextVar("tool_user", default=None)
_source: ContextVar[str] = ContextVar("tool_source", default="")


@dataclass(frozen=True)
class ToolSpec:
    safe: bool = True
    volatile: tuple[str, ...] = ()
    per_run: int | None = None


def tool(
    func: Callable | None = None,
    *,
    safe: bool = True,
    volatile: tuple[str, ...] | list[str] = (),
    per_run: int | None = None,
):
    """Mark a function as a chat tool: ``@tool``, ``@tool(safe=False, volatile=("now",))`` or
    ``@tool(per_run=1)``."""
    if per_run is not None and per_run < 1:
        raise ValueError("per_run is at least 1 (an unlimited tool has None)")

    def mark(f: Callable) -> Callable:
        setattr(f, ATTRIBUTE, ToolSpec(safe=safe, volatile=tuple(volatile), per_run=per_run))
        return f

    return mark(func) if func is not None else mark


def tool_spec(func: Any) -> ToolSpec | None:
    """The recorded spec of a tool function, None for anything else."""
    spec = getattr(func, ATTRIBUTE, None)
    return spec if isinstance(spec, ToolSpec) else None


class ToolRefused(HQError):
    """The acting user may not do this (no longer an operator, or nobody is acting)."""

    status = 403


@contextmanager
def acting_as(user, *, source: str = "") -> Iterator[None]:
    """Run tools as ``user`` (the chat session's owner), on behalf of the app whose task source is
    ``source`` (what the tasks they create are recorded as coming from)."""
    reset, reset_source = _user.set(user), _source.set(source)
    try:
        yield
    finally:
        _user.reset(reset)
        _source.reset(reset_source)


def tool_user():
    """The operator a tool acts for; refused unless that account is still an active operator,
    exactly as their own session would be."""
    user = _user.get()
    if user is None or session_principal(user) is None:
        raise ToolRefused(
            "not_an_operator", "this tool acts for an operator, and the session's owner is not one"
        )
    return user


def tool_source() -> str:
    """The task source of the app running the tool ("" when none said)."""
    return _source.get()


def tool_actor() -> str:
    """The acting operator as history rows and events name them (``operator:alice``)."""
    return actor_of(tool_user())
