"""Read models: what the Overview line, the Engine page and ``GET /api/engine/status`` say about the engine."""

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from juggernaut.areas import AreaStatus
from juggernaut.engine.models import OPEN_STATUSES, EngineState, Status, Task, Worker
from juggernaut.engine.services.common import plural


def status_counts() -> dict[str, int]:
    counts = dict(Task.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {s: counts.get(s, 0) for s in Status.values}


def engine_snapshot(*, now=None) -> dict:
    """Everything the Overview line, the page header and ``GET /status`` say about the engine."""
    now = now or timezone.now()
    state = EngineState.get()
    counts = status_counts()
    live = list(Worker.objects.live(now))
    blocked_reasons = list(
        Task.objects.filter(status=Status.BLOCKED)
        .values_list("reason")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("reason", "n")[:3]
    )
    return {
        "paused": state.paused,
        "paused_by": state.paused_by,
        "paused_at": state.paused_at,
        "pause_reason": state.reason,
        "counts": counts,
        "open": sum(counts[s] for s in OPEN_STATUSES),
        "workers_live": len(live),
        "workers_known": Worker.objects.filter(stopped_at__isnull=True).count(),
        "findings": _tick_silence(state.last_tick_at, now) + list((state.findings or {}).values()),
        "last_tick_at": state.last_tick_at,
        "blocked_reasons": blocked_reasons,
    }


TICK_SILENT_AFTER = timedelta(minutes=3)


def _tick_silence(last_tick, now) -> list[dict]:
    """Nothing rescues or unblocks tasks while the jobs process is down: a finding of its own, first."""
    if last_tick is None or now - last_tick <= TICK_SILENT_AFTER:
        return []
    minutes = int((now - last_tick).total_seconds() // 60)
    return [
        {
            "kind": "tick_silent",
            "message": f"Autonomy loop silent for {minutes} min: is the jobs process running?",
        }
    ]


def engine_area_status() -> AreaStatus:
    """The Overview's Engine line: what it is doing, or exactly why it is idle."""
    snap = engine_snapshot()
    c = snap["counts"]
    findings = snap["findings"]
    detail = " · ".join(f["message"] for f in findings[:2])
    workers = snap["workers_live"]
    w = plural(workers, "worker")
    if snap["paused"]:
        why = f": {snap['pause_reason']}" if snap["pause_reason"] else ""
        text = f"Paused by operator {snap['paused_by']}{why}. {c['running']} running, {c['pending']} queued."
        return AreaStatus("warn", text, detail)
    if c["running"]:
        text = f"Running {plural(c['running'], 'task')} on {w}; {c['pending']} queued."
        if c["waiting_approval"]:
            text += f" {plural(c['waiting_approval'], 'task')} waiting for approval."
        return AreaStatus("warn" if findings else "busy", text, detail)
    if workers == 0 and (c["pending"] or c["blocked"]):
        waiting = c["pending"] + c["blocked"]
        return AreaStatus("error", f"No worker alive; {plural(waiting, 'task')} waiting to run.", detail)
    if c["blocked"] and not c["pending"]:
        reason = snap["blocked_reasons"][0][0] if snap["blocked_reasons"] else "no capable worker"
        return AreaStatus("warn", f"All {plural(c['blocked'], 'open task')} blocked: {reason}", detail)
    if c["waiting_approval"] and not c["pending"]:
        return AreaStatus(
            "warn", f"Idle: {plural(c['waiting_approval'], 'task')} waiting for your approval.", detail
        )
    if c["pending"]:
        return AreaStatus("busy", f"{plural(c['pending'], 'task')} queued for {w}.", detail)
    if workers == 0:
        return AreaStatus("idle", "No tasks, and no worker alive.", detail)
    return AreaStatus("warn" if findings else "ok", f"Idle: no tasks. {w} ready.", detail)


def engine_history(*, now=None, hours: int = 24) -> list[dict]:
    """Per hour over the last ``hours``: tasks finished done, and queue depth (open tasks) at its end."""
    now = now or timezone.now()
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    starts = [end - timedelta(hours=hours - i) for i in range(hours)]
    since = starts[0]
    done: dict[str, Any] = {}
    depth: dict[str, Any] = {}
    for i, start in enumerate(starts):
        stop = min(start + timedelta(hours=1), now)
        done[f"d{i}"] = Count(
            "id", filter=Q(status=Status.DONE, finished_at__gte=start, finished_at__lt=stop)
        )
        depth[f"q{i}"] = Count(
            "id",
            filter=Q(created_at__lte=stop) & (Q(finished_at__isnull=True) | Q(finished_at__gt=stop)),
        )
    relevant = Task.objects.filter(
        Q(finished_at__gte=since) | Q(finished_at__isnull=True, status__in=OPEN_STATUSES)
    )
    agg = relevant.aggregate(**done, **depth)
    return [
        {"start": start, "done": agg[f"d{i}"] or 0, "depth": agg[f"q{i}"] or 0}
        for i, start in enumerate(starts)
    ]
