"""The handler registry: which function runs a task of a given kind, and what a worker needs for it.

Apps declare handlers in ``<app>/handlers.py``; ``EngineConfig.ready`` imports those modules through
``juggernaut.discovery`` (the way the admin finds ``admin.py``). A handler is ``func(ctx) -> result``, where
``ctx`` is a :class:`HandlerContext` and the result is anything JSON can hold.

The engine's own harmless handlers (``noop``, ``echo``, ``sleep``, ``fail``) are registered here, for
tests and demos.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT_SECONDS = 600


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help (bad payload): the task fails at once."""


class TaskReleased(Exception):
    """Raised by a handler that stopped early because its worker is shutting down.

    The task goes back to the queue without consuming an attempt.
    """


@dataclass
class HandlerContext:
    """What a handler gets: the task's data plus a way to notice that its worker is stopping."""

    task_id: int
    kind: str
    title: str
    payload: dict
    attempt: int
    stopping: threading.Event = field(default_factory=threading.Event)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False if the worker began stopping meanwhile."""
        return not self.stopping.wait(seconds)

    def check_stop(self) -> None:
        if self.stopping.is_set():
            raise TaskReleased("worker is stopping")


Func = Callable[[HandlerContext], Any]


@dataclass(frozen=True)
class Handler:
    kind: str
    func: Func
    capabilities: tuple[str, ...] = ()
    timeout: int = DEFAULT_TIMEOUT_SECONDS
    needs_approval: bool = False
    description: str = ""


_registry: dict[str, Handler] = {}
_lock = threading.Lock()


def register(
    kind: str,
    func: Func | None = None,
    *,
    capabilities: list[str] | tuple[str, ...] = (),
    timeout: int = DEFAULT_TIMEOUT_SECONDS,
    needs_approval: bool = False,
    description: str = "",
):
    """Register ``func`` for tasks of ``kind``; usable as ``@register("kind", capabilities=[...])``.

    ``needs_approval`` is policy: new tasks of this kind wait for an operator before they run.
    Registering a kind again replaces it (module reloads in development do that).
    """

    def add(f: Func) -> Func:
        doc = description or (f.__doc__ or "").strip().split("\n")[0]
        with _lock:
            _registry[kind] = Handler(
                kind=kind,
                func=f,
                capabilities=tuple(sorted(set(capabilities))),
                timeout=int(timeout),
                needs_approval=needs_approval,
                description=doc,
            )
        return f

    return add(func) if func is not None else add


def unregister(kind: str) -> None:
    with _lock:
        _registry.pop(kind, None)


def lookup(kind: str) -> Handler | None:
    return _registry.get(kind)


def registered() -> list[Handler]:
    return sorted(_registry.values(), key=lambda h: h.kind)


def default_capabilities(kind: str) -> list[str]:
    """What a new task of ``kind`` requires unless told: its handler's capabilities or, for a kind no
    handler here knows, a capability named after the kind (so only a worker that declares it takes it)."""
    handler = lookup(kind)
    return list(handler.capabilities) if handler else [kind]


def all_capabilities() -> list[str]:
    """The union of every registered handler's capabilities: the built-in worker's default."""
    caps: set[str] = set()
    for handler in _registry.values():
        caps.update(handler.capabilities)
    return sorted(caps)


# --- built-in handlers: harmless, for tests and demos ---------------------------------------------


@register("noop", timeout=60)
def noop(ctx: HandlerContext) -> None:
    """Does nothing and succeeds."""
    return None


@register("echo", timeout=60)
def echo(ctx: HandlerContext) -> dict:
    """Returns its payload as the result."""
    return {"echo": ctx.payload}


@register("sleep", capabilities=["timer"], timeout=3600)
def sleep(ctx: HandlerContext) -> dict:
    """Sleeps ``payload.seconds`` (at most an hour); gives the task back if its worker stops."""
    seconds = ctx.payload.get("seconds", 1)
    if not isinstance(seconds, int | float) or not 0 <= seconds <= 3600:
        raise PermanentError("payload.seconds must be a number between 0 and 3600")
    started = time.monotonic()
    if not ctx.wait(float(seconds)):
        raise TaskReleased("worker stopped during sleep")
    return {"slept": round(time.monotonic() - started, 3)}


@register("fail", timeout=60)
def fail(ctx: HandlerContext) -> None:
    """Always fails (``payload.permanent`` makes it fail without retries): for trying retries out."""
    message = str(ctx.payload.get("message") or "failing on purpose")
    if ctx.payload.get("permanent"):
        raise PermanentError(message)
    raise RuntimeError(message)
