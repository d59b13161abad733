"""The Engine page's live fragments: built once here, for the first render and for every event.

Each fragment is one top-level element with a stable id (``engine-counts``, ``engine-task-42``…);
the HQ websocket sends them out-of-band, and htmx swaps whichever ids the current page has.
"""

from datetime import timedelta

from django.db.models import Case, IntegerField, Value, When
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst

from juggernaut.areas import Action
from juggernaut.charts import Series, chart_build
from juggernaut.engine import handlers, services
from juggernaut.engine.models import ANY_KIND, CLOSED_STATUSES, Status, Task, Worker
from juggernaut.feed import FeedItem

FRAGMENTS = ["state", "counts", "waiting", "workers", "failures", "tasks", "chart"]
OPEN_LIMIT = 50
FINISHED_LIMIT = 10

TABLE_STATUSES = [Status.RUNNING, Status.PENDING, Status.BLOCKED]
STATUS_ORDER = Case(
    *[When(status=s, then=Value(i)) for i, s in enumerate(TABLE_STATUSES)],
    default=Value(len(TABLE_STATUSES)),
    output_field=IntegerField(),
)


def _chart(now) -> dict:
    history = services.engine_history(now=now)
    return chart_build(
        "Tasks done per hour and queue depth, last 24 hours (UTC)",
        labels=[f"{h['start']:%H}:00" for h in history],
        series=[
            Series("done", "tasks/h", [h["done"] for h in history]),
            Series("queue depth", "tasks", [h["depth"] for h in history], kind="line", axis="right"),
        ],
    )


def _workers(now) -> list[dict]:
    running: dict[int, int] = {}
    for owner in Task.objects.filter(status=Status.RUNNING).values_list("lease_owner_id", flat=True):
        running[owner] = running.get(owner, 0) + 1
    recent = now - timedelta(hours=1)
    rows = []
    for w in Worker.objects.exclude(stopped_at__lt=recent):
        state = "stopped" if w.stopped_at else ("live" if w.is_live(now) else "silent")
        rows.append({"worker": w, "state": state, "running": running.get(w.pk, 0)})
    return rows


def _task_rows(tasks, now) -> list[dict]:
    return [{"task": t} for t in tasks]


def context(*, now=None, only: list[str] | None = None) -> dict:
    """What the page's fragments need (``only`` limits the queries to some fragments)."""
    now = now or timezone.now()
    want = set(only or FRAGMENTS)
    ctx: dict = {"now": now}
    if want & {"state", "counts"}:
        ctx["snap"] = snap = services.engine_snapshot(now=now)
        ctx["area"] = services.engine_area_status(snap)
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


def render_timed() -> str:
    """The fragments whose truth can change by the clock alone: the headline and findings, the count of
    live workers, the workers."""
    return render_fragments(["state", "counts", "workers"])


def render_events(envelopes: list[dict]) -> str:
    """Re-render the page's fragments once per batch of engine events, whatever they were."""
    return render_fragments() if envelopes else ""


def kinds() -> list[str]:
    return [h.kind for h in handlers.registered()]


def reassign_candidates(task: Task, now=None) -> list[Worker]:
    """Live workers that would claim ``task`` as it is: its kind, and its requirements never narrowed."""
    return [w for w in Worker.objects.live(now) if w.can_run(task.required_capabilities, task.kind)]


def start_actions(task: Task, now=None) -> list[Action]:
    """What would let a live worker run ``task`` (the task page's hint when no candidate is left)."""
    live = list(Worker.objects.live(now))
    return services.why_unrunnable(task.required_capabilities or [], task.kind, live)[1]


def runnable_kinds(worker: Worker) -> list[str]:
    """The kinds this worker claims whose tasks, as created by default, it can run.

    A worker that runs any kind (``*``) is offered every kind the handler registry has; one that
    declared its kinds, only those.
    """
    registry = [h.kind for h in handlers.registered()]
    kinds = registry if ANY_KIND in (worker.kinds or []) else sorted(worker.kinds or [])
    return [k for k in kinds if worker.can_run(handlers.default_capabilities(k), k)]


def worker_context(worker: Worker, now=None) -> dict:
    """The worker page: its state, what it can run, and what it holds."""
    now = now or timezone.now()
    state = "stopped" if worker.stopped_at else ("live" if worker.is_live(now) else "silent")
    return {
        "worker": worker,
        "state": state,
        "now": now,
        "runnable_kinds": runnable_kinds(worker),
        "any_kind": ANY_KIND in (worker.kinds or []),
        "running": Task.objects.filter(status=Status.RUNNING, lease_owner=worker).count(),
    }


# --- the activity feed's sentences for engine events (the one place they are worded) --------------------


def sentence(text: str) -> str:
    """``text`` as one sentence: a capital first, and one closing mark (reasons bring their own)."""
    text = capfirst(text.strip())
    return text if text.endswith((".", "!", "?")) else text + "."


def _task_ref(data: dict) -> str:
    return f"Task #{data.get('id')} “{data.get('title', '')}”"


def _batch(data: dict, what: str) -> str:
    count = data.get("count", len(data.get("ids", [])))
    noun = "task" if count == 1 else "tasks"
    reason = f": {data['reason']}" if data.get("reason") else ""
    return f"{count} {noun} {what}{reason}"


def _who(data: dict) -> str:
    return str(data.get("by") or "someone").removeprefix("operator:")


def _url(type_: str, data: dict) -> str:
    if type_.startswith("worker_") and data.get("id"):  # a worker's own events carry its id as "id"
        return reverse("engine:worker", args=[data["id"]])
    ids = data.get("ids")
    task_id = data.get("task_id") or data.get("id") or (ids[0] if ids and len(ids) == 1 else None)
    if task_id:
        return reverse("engine:task", args=[task_id])
    if data.get("worker_id"):
        return reverse("engine:worker", args=[data["worker_id"]])
    return reverse("engine:index")


def describe_event(type_: str, data: dict) -> FeedItem | None:
    """Engine event type → sentence, severity and link, for the Overview's activity feed."""
    url = _url(type_, data)
    batched = "ids" in data
    if type_ == "task_created":
        if data.get("status") == Status.WAITING_APPROVAL:
            return FeedItem(f"{_task_ref(data)} waits for your approval.", "warn", url)
        return FeedItem(f"{_task_ref(data)} created ({data.get('kind')}).", "info", url)
    if type_ == "task_claimed":
        return FeedItem(f"{data.get('message') or _batch(data, 'claimed')}.", "info", url)
    if type_ == "task_done":
        return FeedItem(f"{_task_ref(data)} done by {data.get('worker', 'a worker')}.", "ok", url)
    if type_ == "task_failed":
        if data.get("status") == Status.FAILED:
            return FeedItem(f"{_task_ref(data)} failed for good.", "error", url, data.get("error", ""))
        return FeedItem(f"{_task_ref(data)} failed; it will be retried.", "warn", url, data.get("error", ""))
    if type_ == "task_escalated":
        if batched:
            return FeedItem(f"{_batch(data, 'escalated')}.", "error", url)
        return FeedItem(
            f"{_task_ref(data)} escalated: it needs you.",
            "error",
            url,
            data.get("error") or data.get("reason", ""),
        )
    words = {
        "task_rescued": ("back in the queue", "warn"),
        "task_blocked": ("blocked", "warn"),
        "task_unblocked": ("back in the queue", "info"),
        "task_waiting_approval": ("waiting for your approval", "warn"),
        "task_approved": ("approved", "ok"),
        "task_retried": ("queued again", "info"),
        "task_cancelled": ("cancelled", "info"),
        "task_reassigned": ("back in the queue for any capable worker", "info"),
        "task_released": ("given back to the queue", "info"),
        "task_acknowledged": ("acknowledged", "ok"),
        "task_updated": (f"now has priority {data.get('priority')}", "info"),
    }
    if type_ in words:
        what, severity = words[type_]
        if batched:
            return FeedItem(sentence(_batch(data, what)), severity, url)
        reason = data.get("reason", "") if type_ in ("task_waiting_approval", "task_blocked") else ""
        return FeedItem(sentence(f"{_task_ref(data)} {what}{': ' + reason if reason else ''}"), severity, url)
    if type_ == "worker_registered":
        caps = ", ".join(data.get("capabilities") or []) or "no capabilities"
        return FeedItem(f"Worker {data.get('name')} started ({caps}).", "ok", url)
    if type_ == "worker_stopped":
        return FeedItem(f"Worker {data.get('name')} stopped.", "info", url)
    if type_ == "engine_paused":
        why = f": {data['reason']}" if data.get("reason") else ""
        return FeedItem(f"Engine paused by {_who(data)}{why}.", "warn", url)
    if type_ == "engine_resumed":
        return FeedItem(f"Engine resumed by {_who(data)}.", "ok", url)
    if type_ == "stuck_detected":
        return FeedItem(data.get("message", "Something looks stuck."), "warn", url)
    if type_ == "stuck_cleared":
        count = data.get("count", 1)
        return FeedItem(f"{count} stuck finding{'' if count == 1 else 's'} cleared: moving again.", "ok", url)
    return None
