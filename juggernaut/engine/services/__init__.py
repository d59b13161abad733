"""The engine's workflows, one module per part; callers use this package (``services.task_claim(...)``).

- ``claims``: workers register, heartbeat and stop; the claim protocol (claim, task heartbeat,
  complete, fail, release), fenced by worker incarnation.
- ``actions``: queueing tasks and the operator's actions (approve, retry, cancel, acknowledge,
  reassign, prioritise) and the stop switch (pause, resume).
- ``autonomy``: the autonomy tick (rescue expired leases, reroute, unblock rules, stuck detection).
- ``read_models``: what the Overview, the Engine page and the status API say about the engine.
- ``common``: what they share (names, input checks, the history-and-event record, waking workers).

Every status change writes a ``TaskEvent`` and publishes an ``engine`` event in the same transaction.
Changes that may race (claims, completions, ticks in several clusters) are conditional updates or row
locks taken with SKIP LOCKED, so a change is applied once or not at all.
"""

from juggernaut.engine.services.actions import (
    engine_pause,
    engine_resume,
    task_acknowledge,
    task_approve,
    task_cancel,
    task_create,
    task_prioritize,
    task_reassign,
    task_retry,
)
from juggernaut.engine.services.autonomy import (
    TickReport,
    engine_tick,
    stuck_findings,
    tasks_rescue,
    tasks_unblock_capable,
    why_unrunnable,
)
from juggernaut.engine.services.claims import (
    task_claim,
    task_complete,
    task_fail,
    task_heartbeat,
    task_release,
    worker_heartbeat,
    worker_register,
    worker_stop,
)
from juggernaut.engine.services.common import TOPIC, WAKE_CHANNEL, backoff_delay, local_wake
from juggernaut.engine.services.read_models import (
    engine_area_status,
    engine_history,
    engine_snapshot,
    status_counts,
)

__all__ = [
    "TOPIC",
    "WAKE_CHANNEL",
    "TickReport",
    "backoff_delay",
    "engine_area_status",
    "engine_history",
    "engine_pause",
    "engine_resume",
    "engine_snapshot",
    "engine_tick",
    "local_wake",
    "status_counts",
    "stuck_findings",
    "task_acknowledge",
    "task_approve",
    "task_cancel",
    "task_claim",
    "task_complete",
    "task_create",
    "task_fail",
    "task_heartbeat",
    "task_prioritize",
    "task_reassign",
    "task_release",
    "task_retry",
    "tasks_rescue",
    "tasks_unblock_capable",
    "worker_heartbeat",
    "worker_register",
    "worker_stop",
    "why_unrunnable",
]
