"""What a running loop and its watcher thread share: the lease, the abort flag, the stream to cancel,
the coalescing of tokens, and the outcomes a step can have.

The watcher keeps the run's heartbeat and notices Stop, the wall time limit and a lost lease within
``CHAT_CANCEL_POLL_SECONDS``; it then cancels the model's stream under the loop.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.utils import timezone

from chat import runs
from chat.models import ChatBudget, ChatRun, Phase, RunStatus, StopReason, ToolExecution

log = logging.getLogger(__name__)

LOST = "lost"  # the run was closed under us (the sweep, or a Stop that closed it): nothing more to do


@dataclass
class Stop:
    reason: str
    detail: str
    action: str = ""


@dataclass
class Wait:
    executions: list[ToolExecution]


@dataclass
class Control:
    """What the loop and its watcher share: the lease, the abort flag and the stream to cancel."""

    run_id: int
    lease: str
    wall_limit: float
    wall_before: float
    started: float = field(default_factory=time.monotonic)
    stopped: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    detail: str = ""
    stream: object = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wall(self) -> float:
        return self.wall_before + time.monotonic() - self.started

    def abort(self, reason: str, detail: str) -> None:
        with self.lock:
            if self.reason:
                return
            self.reason, self.detail = reason, detail
            self.stopped.set()
            if self.stream is not None:
                self.stream.cancel()

    def set_stream(self, stream) -> None:
        with self.lock:
            self.stream = stream
            if self.reason and stream is not None:
                stream.cancel()

    def stop(self) -> Stop:
        return Stop(self.reason, self.detail)


def _wall_meter(control: Control) -> runs.Thresholds:
    usage = {"wall_seconds": {"used": control.wall(), "limit": control.wall_limit}}
    return runs.Thresholds(usage, ("wall_seconds",))


def _wall_crossings(control: Control, meter: runs.Thresholds) -> None:
    """A ``budget`` event when the wall time passes one of the thresholds (between the loop's steps,
    so the watcher tells it)."""
    crossed = meter.crossed({"wall_seconds": {"used": round(control.wall(), 3), "limit": control.wall_limit}})
    if not crossed:
        return
    run = ChatRun.objects.filter(pk=control.run_id).first()
    budget = ChatBudget.objects.filter(run_id=control.run_id).first()
    if run is None or budget is None:
        return
    budget.wall_seconds_used = control.wall()
    for c in crossed:
        c["limit"] = int(control.wall_limit)
    runs.budget_emit(run, budget, crossed)


def watch(control: Control, finished: threading.Event) -> None:
    """Heartbeat, Stop, the time limit and the lease, checked until the loop is finished."""
    last_beat = time.monotonic()
    meter = _wall_meter(control)
    try:
        while not finished.wait(settings.CHAT_CANCEL_POLL_SECONDS):
            _wall_crossings(control, meter)
            row = (
                ChatRun.objects.filter(pk=control.run_id)
                .values_list("lease_owner", "status", "cancel_requested_at", "cancel_requested_by")
                .first()
            )
            if row is None or row[0] != control.lease or row[1] != RunStatus.RUNNING:
                control.abort(LOST, "")
                return
            if row[2] is not None:
                control.abort(StopReason.CANCELLED, f"Stopped by {row[3] or 'an operator'}.")
            elif control.wall() >= control.wall_limit:
                control.abort(
                    StopReason.TIME_LIMIT, f"The run used its {int(control.wall_limit)} s of wall time."
                )
            if time.monotonic() - last_beat >= settings.CHAT_HEARTBEAT_SECONDS:
                ChatRun.objects.filter(pk=control.run_id, lease_owner=control.lease).update(
                    heartbeat_at=timezone.now()
                )
                last_beat = time.monotonic()
    except Exception:  # the database went away: the run cannot prove it is alive, so it stops
        log.exception("chat run %s: watcher failed", control.run_id)
        control.abort(StopReason.INTERRUPTED, "The run lost its database connection.")
    finally:
        connection.close()


class Tokens:
    """Coalesces streamed text into ``token`` events: the first piece at once, then at most one event
    per ``CHAT_TOKEN_FLUSH_SECONDS``."""

    def __init__(self, run: ChatRun, iteration: int) -> None:
        self.run, self.iteration = run, iteration
        self.pieces: list[str] = []
        self.shown: list[str] = []  # every piece sent so far: what the operator has read
        self.last = 0.0
        self.sent = 0

    def add(self, piece: str) -> None:
        if not self.sent and not self.pieces:
            runs.status_emit(self.run, Phase.STREAMING)
        self.pieces.append(piece)
        if time.monotonic() - self.last >= settings.CHAT_TOKEN_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pieces:
            text, self.pieces = "".join(self.pieces), []
            self.shown.append(text)
            self.last = time.monotonic()
            runs.emit(self.run, "token", {"delta": text, "iteration": self.iteration})
            self.sent += 1
