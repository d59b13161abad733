"""The Engine page's live fragments: built once here, for the first render and for every event.

Each fragment is one top-level element with a stable id (``engine-counts``, ``engine-task-42``…);
the HQ websocket sends them out-of-band, and htmx swaps whichever ids the current page has.
"""

from datetime import timedelta

from django.db.models import Case, IntegerField, Value, When
from django.template.loader import render_to_string
from django.utils import timezone

from juggernaut.engine import handlers, services
from juggernaut.engine.models import CLOSED_STATUSES, Status, Task, Worker

FRAGMENTS = ["state", "counts", "waiting", "workers", "failures", "tasks", "chart"]
OPEN_LIMIT = 50
FINISHED_LIMIT = 10
CHART_W, CHART_H, CHART_PAD = 720, 140, 24

TABLE_STATUSES = [Status.RUNNING, Status.PENDING, Status.BLOCKED]
STATUS_ORDER = Case(
    *[When(status=s, then=Value(i)) for i, s in enumerate(TABLE_STATUSES)],
    default=Value(len(TABLE_STATUSES)),
    output_field=IntegerField(),
)


def _age(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _chart(now) -> dict:
    history = services.engine_history(now=now)
    plot_w, plot_h = CHART_W - 2 * CHART_PAD, CHART_H - 2 * CHART_PAD
    max_done = max((h["done"] for h in history), default=0) or 1
    max_depth = max((h["depth"] for h in history), default=0) or 1
    step = plot_w / len(history)
    bars, points = [], []
    for i, h in enumerate(history):
        height = plot_h * h["done"] / max_done
        x = CHART_PAD + i * step
        bars.append(
            {
                "x": round(x + 1, 1),
                "y": round(CHART_PAD + plot_h - height, 1),
                "w": round(step - 2, 1),
                "h": round(height, 1),
                "label": f"{h['start']:%H:00} UTC: {h['done']} done, queue {h['depth']}",
            }
        )
        y = CHART_PAD + plot_h - plot_h * h["depth"] / max_depth
        points.append(f"{x + step / 2:.1f},{y:.1f}")
    return {
        "w": CHART_W,
        "h": CHART_H,
        "pad": CHART_PAD,
        "bottom": CHART_PAD + plot_h,
        "right": CHART_W - CHART_PAD,
        "bars": bars,
        "points": " ".join(points),
        "max_done": max((h["done"] for h in history), default=0),
        "max_depth": max((h["depth"] for h in history), default=0),
        "total_done": sum(h["done"] for h in history),
    }


def _workers(now) -> list[dict]:
    running: dict[int, int] = {}
    for owner in Task.objects.filter(status=Status.RUNNING).values_list("lease_owner_id", flat=True):
        running[owner] = running.get(owner, 0) + 1
    recent = now - timedelta(hours=1)
    rows = []
    for w in Worker.objects.exclude(stopped_at__lt=recent):
        state = "stopped" if w.stopped_at else ("live" if w.is_live(now) else "silent")
        rows.append(
            {"worker": w, "state": state, "age": _age(w.heartbeat_age(now)), "running": running.get(w.pk, 0)}
        )
    return rows


def _task_rows(tasks, now) -> list[dict]:
    return [{"task": t, "age": _age(now - t.created_at)} for t in tasks]


def context(*, now=None, only: list[str] | None = None) -> dict:
    """What the page's fragments need (``only`` limits the queries to some fragments)."""
    now = now or timezone.now()
    want = set(only or FRAGMENTS)
    ctx: dict = {"now": now}
    if want & {"state", "counts"}:
        ctx["snap"] = snap = services.engine_snapshot(now=now)
        ctx["area"] = services.engine_area_status()
        ctx["count_items"] = [(s, snap["counts"][s]) for s in Status.values]
    if "waiting" in want:
        waiting = Task.objects.filter(status=Status.WAITING_APPROVAL).order_by(
            "-priority", "status_changed_at"
        )
        ctx["waiting"] = _task_rows(waiting[:OPEN_LIMIT], now)
        ctx["waiting_count"] = waiting.count()
    if "workers" in want:
        ctx["workers"] = _workers(now)
    if "failures" in want:
        failures = Task.objects.filter(status__in=[Status.FAILED, Status.ESCALATED]).order_by("-finished_at")
        ctx["failures"] = _task_rows(failures[:FINISHED_LIMIT], now)
    if "tasks" in want:
        open_qs = (
            # Tasks waiting for approval have their own card.
            Task.objects.filter(status__in=TABLE_STATUSES)
            .select_related("lease_owner")
            .annotate(status_order=STATUS_ORDER)
            .order_by("status_order", "-priority", "created_at")
        )
        ctx["open_tasks"] = _task_rows(open_qs[:OPEN_LIMIT], now)
        ctx["open_count"] = open_qs.count()
        finished = Task.objects.filter(status__in=CLOSED_STATUSES).select_related("lease_owner")
        ctx["finished_tasks"] = _task_rows(finished.order_by("-finished_at", "-id")[:FINISHED_LIMIT], now)
        ctx["workers_by_name"] = list(
            Worker.objects.filter(stopped_at__isnull=True).values_list("name", flat=True)
        )
    if "chart" in want:
        ctx["chart"] = _chart(now)
    return ctx


def render_fragments(names: list[str] | None = None, *, oob: bool = True, ctx: dict | None = None) -> str:
    names = names or FRAGMENTS
    ctx = {**(ctx or context(only=names)), "oob": oob}
    return "".join(render_to_string(f"engine/_{name}.html", ctx) for name in names)


def render_resync() -> str:
    return render_fragments()


def render_events(envelopes: list[dict]) -> str:
    """Re-render the page's fragments once per batch of engine events, whatever they were."""
    return render_fragments() if envelopes else ""


def kinds() -> list[str]:
    return [h.kind for h in handlers.registered()]
