"""Read models: what the Overview line, the Engine page and ``GET /api/engine/status`` say about the engine."""

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from juggernaut.areas import Action, AreaStatus
from juggernaut.engine import handlers
from juggernaut.engine.models import OPEN_STATUSES, EngineState, Status, Task, Worker
from juggernaut.engine.services.autonomy import stuck_findings, why_unrunnable
from juggernaut.engine.services.common import NO_CAPABLE_WORKER, PERMANENT_ERROR, plural, worker_command
from juggernaut.timefmt import duration_text


def status_counts() -> dict[str, int]:
    counts = dict(Task.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {s: counts.get(s, 0) for s in Status.values}


def engine_snapshot(*, now=None) -> dict:
    """Everything the Overview line, the page header and ``GET /status`` say about the engine."""
    now = now or timezone.now()
    state = EngineState.load()
    counts = status_counts()
    live = list(Worker.objects.live(now))
    return {
        "paused": state.paused,
        "paused_by": state.paused_by,
        "paused_at": state.paused_at,
        "pause_reason": state.reason,
        "counts": counts,
        "open": sum(counts[s] for s in OPEN_STATUSES),
        "workers_live": len(live),
        "workers_known": Worker.objects.filter(stopped_at__isnull=True).count(),
        "findings": engine_findings(state, counts, live, now=now),
        "last_tick_at": state.last_tick_at,
    }


TICK_SILENT_AFTER = timedelta(minutes=3)
# When this process started (its import, at Django's setup). A loop that has never run is only news
# once the jobs process had time to tick (it ticks every minute, the first time within seconds of
# starting): TICK_SILENT_AFTER past both this process's start and the engine state's creation (by the
# first migrate, maybe long before the HQ first runs), so neither a fresh install nor a restart of
# the web process alone raises it while the jobs process comes up beside it.
STARTED_AT = timezone.now()
SEVERITY_ORDER = {"error": 0, "warn": 1}


def _finding(kind: str, severity: str, message: str, *actions: Action, **extra: Any) -> dict:
    return {
        "kind": kind,
        "severity": severity,
        "message": message,
        "actions": [a.__dict__ for a in actions],
        **extra,
    }


def _task_actions(task: Task, *names: str) -> list[Action]:
    labels = {
        "approve": "Approve",
        "retry": "Retry",
        "acknowledge": "Acknowledge",
        "reassign": "Requeue",
        "cancel": "Cancel",
    }
    return [Action(labels[n], post=reverse("engine:task-action", args=[task.pk, n])) for n in names]


def _unrunnable(live: list[Worker]) -> list[dict]:
    """Waiting tasks (pending, or blocked for want of a worker) that no live worker would claim.

    One group per need, split by kind where the kind changes what is missing or its fix (not every
    live worker runs it, or no handler knows it); biggest first.
    """
    waiting = Task.objects.filter(
        Q(status=Status.PENDING) | Q(status=Status.BLOCKED, reason_code=NO_CAPABLE_WORKER)
    )
    groups: dict[tuple[str, tuple[str, ...]], dict] = {}
    rows = waiting.values_list("kind", "required_capabilities").annotate(n=Count("id"))
    for kind, required, n in rows:
        need = tuple(sorted(required or []))
        if any(w.can_run(need, kind) for w in live):
            continue
        matters = handlers.lookup(kind) is None or not all(w.runs_kind(kind) for w in live)
        group = groups.setdefault((kind if matters else "", need), {"kind": kind, "need": need, "count": 0})
        group["count"] += n
    return sorted(groups.values(), key=lambda g: -g["count"])


def _unrunnable_finding(kind: str, need: tuple[str, ...], n: int, live: list[Worker]) -> dict:
    """Like the tick's reason for blocking them (``why_unrunnable``), counted, with the same fix."""
    _, actions = why_unrunnable(need, kind, live)
    runners = [w for w in live if w.runs_kind(kind)]
    if not runners:
        verb = "is" if n == 1 else "are"
        message = f"{plural(n, 'task')} {verb} of kind {kind}, which no live worker runs."
        return _finding(
            "no_worker_for_kind", "warn", message, *actions, task_kind=kind, capabilities=list(need), count=n
        )
    who = "live worker" + ("" if len(runners) == len(live) else f" that runs {kind}")
    missing = sorted(set(need) - set().union(*(w.capabilities or [] for w in runners)))
    if missing:
        what = f"capabilit{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}, which no {who} has"
    else:
        what = f"{', '.join(need)} together, which no single {who} has"
    message = f"{plural(n, 'task')} need{'s' if n == 1 else ''} {what}."
    return _finding("no_capable_worker", "warn", message, *actions, capabilities=list(need), count=n)


def engine_findings(state: EngineState, counts: dict[str, int], live: list[Worker], *, now) -> list[dict]:
    """Everything that needs a human or looks wrong, worst first, each with its next action.

    Computed on every read from the database and the clock, so it is true the moment it is shown.
    """
    found: list[dict] = []
    if state.paused:
        why = f": {state.reason}" if state.reason else ""
        found.append(
            _finding(
                "paused",
                "warn",
                f"Engine paused by {state.paused_by.removeprefix('operator:')}{why}. "
                f"{counts['running']} running, {counts['pending']} queued.",
                Action("Resume", post=reverse("engine:resume")),
            )
        )
    if state.last_tick_at is not None and now - state.last_tick_at > TICK_SILENT_AFTER:
        found.append(
            _finding(
                "tick_silent",
                "error",
                f"The autonomy loop has not run for {duration_text(now - state.last_tick_at)}: "
                "is the jobs process running?",
                Action("Start the jobs process", command="manage.py qcluster"),
            )
        )
    if state.last_tick_at is None and now - max(state.created_at, STARTED_AT) > TICK_SILENT_AFTER:
        found.append(
            _finding(
                "tick_never",
                "warn",
                "The autonomy loop has never run: is the jobs process running?",
                Action("Start the jobs process", command="manage.py qcluster"),
            )
        )
    waiting = counts["pending"] + counts["blocked"]
    if not live and waiting:
        needs = set().union(
            *Task.objects.filter(status__in=[Status.PENDING, Status.BLOCKED])
            .values_list("required_capabilities", flat=True)
            .distinct()[:50]
        )
        supervised = next((w for w in Worker.objects.silent(now).filter(restarted_after__isnull=False)), None)
        message = f"No worker alive; {plural(waiting, 'task')} waiting to run."
        if supervised:  # make run will restart it: say when, and offer no command that would race it
            advice = supervised.restart_advice(now)
            found.append(_finding("no_worker", "error", f"{message} Worker {supervised.name}: {advice}."))
        else:
            found.append(
                _finding(
                    "no_worker",
                    "error",
                    message,
                    Action("Start a worker", command=worker_command("worker-1", needs)),
                )
            )
    troubled = Task.objects.needs_attention().exclude(status=Status.WAITING_APPROVAL)
    n_troubled = troubled.count()
    if n_troubled:
        first = troubled.order_by("-finished_at", "-id").first()
        what = "escalated" if first.status == Status.ESCALATED else "failed"
        message = f"Task #{first.pk} “{first.title}” {what}: it needs you."
        # A retry cannot help a permanent failure until its cause is fixed: offer the error instead.
        permanent = first.reason_code == PERMANENT_ERROR
        if permanent:
            error = (first.last_error or "no error recorded").strip().splitlines()[0][:200]
            message = f"Task #{first.pk} “{first.title}” failed permanently ({error}): it needs you."
        if n_troubled > 1:
            message = f"{n_troubled} tasks failed or escalated and need you; the latest is #{first.pk} “{first.title}”."
        actions = (
            [Action("Open the error", href=reverse("engine:task", args=[first.pk]))]
            + _task_actions(first, "cancel", "acknowledge")
            if permanent
            else _task_actions(first, "retry", "acknowledge")
        )
        found.append(
            _finding(
                "attention",
                "error",
                message,
                *actions,
                Action("See all", href=reverse("engine:tasks") + "?attention=on"),
                task_id=first.pk,
                count=n_troubled,
            )
        )
    for group in _unrunnable(live) if live else []:
        found.append(_unrunnable_finding(group["kind"], group["need"], group["count"], live))
    if counts["waiting_approval"]:
        first = (
            Task.objects.filter(status=Status.WAITING_APPROVAL)
            .order_by("-priority", "status_changed_at")
            .first()
        )
        n = counts["waiting_approval"]
        message = f"Task #{first.pk} “{first.title}” waits for your approval."
        if n > 1:
            message = f"{n} tasks wait for your approval; the first is #{first.pk} “{first.title}”."
        found.append(
            _finding(
                "waiting_approval",
                "warn",
                message,
                *_task_actions(first, "approve"),
                Action("See all", href=reverse("engine:index") + "#engine-waiting"),
                task_id=first.pk,
                count=n,
            )
        )
    workers = {w.pk: w for w in Worker.objects.silent(now)}
    for key, stuck in stuck_findings(now=now).items():
        actions: list[Action] = []
        if stuck["kind"] == "worker_silent" and stuck["worker_id"] in workers:
            worker = workers[stuck["worker_id"]]
            advice = worker.restart_advice(now)
            if advice:  # the supervisor acts; a command would only race it
                stuck = stuck | {"message": f"{stuck['message']} {advice[0].upper()}{advice[1:]}."}
            else:
                actions.append(
                    Action("Restart it", command=worker_command(worker.name, worker.capabilities or []))
                )
        elif stuck.get("task_id"):
            actions.append(
                Action("Requeue", post=reverse("engine:task-action", args=[stuck["task_id"], "reassign"]))
            )
            actions.append(Action("Open", href=reverse("engine:task", args=[stuck["task_id"]])))
        elif stuck["kind"] == "queue_age":
            actions.append(Action("See the queue", href=reverse("engine:tasks") + "?status=pending"))
        found.append(_finding(stuck["kind"], "warn", stuck["message"], *actions, key=key))
    found.sort(key=lambda f: SEVERITY_ORDER[f["severity"]])
    return found


def engine_area_status(snap: dict | None = None) -> AreaStatus:
    """The Overview's Engine line: the worst finding with its next action, else what it is doing."""
    snap = snap or engine_snapshot()
    c = snap["counts"]
    findings = snap["findings"]
    attention = c["waiting_approval"] + next((f["count"] for f in findings if f["kind"] == "attention"), 0)
    if findings:
        worst = findings[0]
        others = [f["message"] for f in findings[1:3]]
        more = len(findings) - 3
        detail = ("Also: " + " · ".join(others) + (f" (+{more} more)" if more > 0 else "")) if others else ""
        actions = [Action(**a) for a in worst["actions"]]
        return AreaStatus(worst["severity"], worst["message"], detail, actions, attention)
    workers = snap["workers_live"]
    w = plural(workers, "worker")
    # With no finding, a blocked task is one a live worker can run again: the next tick queues it.
    queued = c["pending"] + c["blocked"]
    if c["running"]:
        return AreaStatus("busy", f"Running {plural(c['running'], 'task')} on {w}; {queued} queued.")
    if queued:
        return AreaStatus("busy", f"{plural(queued, 'task')} queued for {w}.")
    if workers == 0:
        return AreaStatus("idle", "No tasks, and no worker alive.")
    return AreaStatus("ok", f"Idle: no tasks. {w} ready.")


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
