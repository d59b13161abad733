"""The chat page's read models and live fragments.

Everything is rendered from the database: the session's rows and, for an answer still streaming, the
run's ``token`` events in the event log. So a reload shows exactly what the live page showed. The HQ
websocket follows the page's session runs (``chat.run.<id>``, see ``hq.page_topics_register``); a
``token`` batch appends its deltas to the streaming message, any other event re-renders the fragments.
"""

from datetime import timedelta

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from chat.models import ChatBudget, ChatRun, ChatSession, Phase, Role, RunStatus, StopReason, ToolStatus
from chat.runs import TOPIC
from juggernaut import feed, hq, schedules
from juggernaut.feed import FeedItem
from juggernaut.models import Event
from juggernaut.timefmt import exact_utc
from routing.live import key_state
from routing.models import Policy, Usage

PAGE_PREFIX = "chat-"
FRAGMENTS = ["modebadge", "status", "messages", "timeline", "budget", "whyidle", "controls", "guardrails"]
TIMELINE_RUNS = 5
ANSWERING = (
    Phase.CALLING_MODEL,
    Phase.WAITING_FIRST_TOKEN,
    Phase.STREAMING,
)  # a message is being written  # the timeline shows the tool executions of the session's latest runs


def page_name(session_id: int) -> str:
    return f"{PAGE_PREFIX}{session_id}"


def session_of_page(user, page: str) -> ChatSession | None:
    ident = page.removeprefix(PAGE_PREFIX)
    if not ident.isdigit() or len(ident) > 18:
        return None
    return ChatSession.objects.owned_by(user).filter(pk=int(ident)).first()


def page_topics(user, page: str) -> list[str]:
    """The topics of the session's latest run (the active one, or the last that stopped)."""
    session = session_of_page(user, page)
    if session is None:
        return []
    latest = session.runs.order_by("-id").values_list("pk", flat=True).first()
    return [f"chat.run.{latest}"] if latest else []


def _meter(name: str, used: float, limit: float | None, text: str) -> dict:
    pct = round(min(used / limit * 100, 100.0), 1) if limit else 0.0
    state = "error" if limit and used >= limit else "warn" if pct >= 80 else "ok"
    return {"name": name, "pct": pct, "state": state, "text": text, "used": used, "limit": limit}


def meters(budget: ChatBudget | None) -> list[dict]:
    """Steps, wall time, cost and retries of a run against its limits."""
    if budget is None:
        return []
    d = budget.as_dict()

    def of(key: str, unit: str = "") -> str:
        limit = d[key]["limit"]
        return (
            f"{d[key]['used']}{unit} of {limit}{unit}"
            if limit is not None
            else f"{d[key]['used']}{unit}, no limit"
        )

    cost_limit = float(d["cost_usd"]["limit"]) if d["cost_usd"]["limit"] is not None else None
    cost_text = f"${float(d['cost_usd']['used']):.4f}" + (
        f" of ${cost_limit:.2f}" if cost_limit is not None else ""
    )
    return [
        _meter("Steps", d["steps"]["used"], d["steps"]["limit"], of("steps")),
        _meter(
            "Wall time",
            d["wall_seconds"]["used"],
            d["wall_seconds"]["limit"],
            f"{d['wall_seconds']['used']:.0f} s of {d['wall_seconds']['limit']} s",
        ),
        _meter("Cost", float(d["cost_usd"]["used"]), cost_limit, cost_text),
        _meter("Retries of one failure", d["retries"]["used"], d["retries"]["limit"], of("retries")),
    ]


def streaming_text(run: ChatRun | None, upto_seq: int | None = None) -> str:
    """The answer the model is streaming now: the deltas of the run's current model call (up to the
    event ``upto_seq``, so later deltas arriving live are appended exactly once)."""
    if run is None or not run.is_active or run.phase != Phase.STREAMING:
        return ""
    rows = Event.objects.filter(topic=run.topic, type="token")
    if upto_seq is not None:
        rows = rows.filter(seq__lte=upto_seq)
    rows = rows.order_by("seq").values_list("data", flat=True)
    pieces = [(d.get("iteration"), d.get("delta", "")) for d in rows]
    current = max((i for i, _ in pieces if i is not None), default=None)
    if current is None or current <= run.iterations:  # that call's answer is a saved message now
        return ""
    return "".join(delta for i, delta in pieces if i == current)


def why_idle(session: ChatSession, run: ChatRun | None) -> dict:
    """When nothing runs: the last stop and what to do, blocks, and the engine's and workers' state."""
    items = []
    if run is not None and run.status == RunStatus.STOPPED:
        items.append(
            {
                "state": "ok" if run.stop_reason in (StopReason.COMPLETED, StopReason.CANCELLED) else "warn",
                "text": f"Run {run.pk} stopped: {StopReason(run.stop_reason).label.lower()}. {run.stop_detail}",
                "action": run.stop_action,
            }
        )
    key = key_state()
    if key["state"] != "ok":
        items.append({"state": key["state"], "text": key["text"], "action": key.get("action", "")})
    for area_key in ("routing", "engine"):
        area = hq.AREAS.get(area_key)
        if area is None:  # switched off
            continue
        status = area.status()
        items.append(
            {
                "state": status.state,
                "text": f"{area.label}: {status.text}",
                "action": status.detail,
                "url": area.url,
            }
        )
    due = schedules.next_due()
    late = due is not None and due.next_run < timezone.now() - timedelta(seconds=LATE_SECONDS)
    items.append(
        {
            "state": "warn",
            "text": f"Scheduled work is late: {due.name.removeprefix(schedules.PREFIX)} was due at "
            f"{exact_utc(due.next_run)}.",
            "action": "Is the jobs process (manage.py qcluster) running?",
            "url": "",
        }
        if late
        else {
            "state": "ok",
            "text": f"Next scheduled work: {due.name.removeprefix(schedules.PREFIX)} at "
            f"{exact_utc(due.next_run)}.",
            "action": "",
            "url": "",
        }
        if due
        else {
            "state": "warn",
            "text": "No scheduled work is set up.",
            "action": "Run manage.py sync_schedules.",
            "url": "",
        }
    )
    return {"items": items}


def context(session: ChatSession, *, now=None, upto_seq: int | None = None) -> dict:
    now = now or timezone.now()
    runs = list(session.runs.select_related("budget").order_by("-id")[:TIMELINE_RUNS])
    run = runs[0] if runs else None
    executions = [e for r in reversed(runs) for e in r.tool_executions.all()]
    waiting = [e for e in executions if e.status == ToolStatus.WAITING_APPROVAL]
    messages = list(session.messages.exclude(role=Role.TOOL).exclude(role=Role.SYSTEM))
    budget = getattr(run, "budget", None) if run else None
    return {
        "now": now,
        "session": session,
        "run": run,
        "running": run is not None and run.is_active,
        "conversation": messages,
        "streaming": streaming_text(run, upto_seq),
        "answering": run is not None and run.is_active and run.phase in ANSWERING,
        "executions": executions,
        "waiting": waiting,
        "meters": meters(budget),
        "guardrails": sorted(((run.guardrails or {}).get("rules") or {}).items()) if run else [],
        "run_counters": run,
        # Every call routing made for the run, a stopped one too (it may have cost something).
        "model_calls": Usage.objects.filter(run=str(run.pk)).made().count() if run else 0,
        "why": why_idle(session, run),
        "key": key_state(),
        "modes": list(Policy.objects.values_list("mode", flat=True)),
        "phase_label": Phase(run.phase).label if run else "",
        "since": (run.started_at or run.created_at) if run else None,
    }


def render_fragments(
    session: ChatSession, names: list[str] | None = None, *, oob: bool = True, upto_seq: int | None = None
) -> str:
    ctx = {**context(session, upto_seq=upto_seq), "oob": oob}
    return "".join(render_to_string(f"chat/_{name}.html", ctx) for name in names or FRAGMENTS)


def render_events(envelopes: list[dict], page: str) -> str:
    """A batch of one run's events: tokens append to the streaming message, the rest re-renders."""
    others = [e for e in envelopes if e["type"] != "token"]
    if others:
        run = ChatRun.objects.select_related("session").filter(pk=others[0]["data"].get("run_id")).first()
        if run is None or page != page_name(run.session_id):
            return ""
        return render_fragments(run.session, upto_seq=envelopes[-1]["seq"])
    run_id = envelopes[0]["data"].get("run_id")
    delta = "".join(e["data"].get("delta", "") for e in envelopes)
    return f'<span hx-swap-oob="beforeend:#chat-stream-{int(run_id)}">{escape(delta)}</span>'


# A schedule this far past its time has not simply not been picked up yet: the cluster is not running.
LATE_SECONDS = 60


def describe_event(type_: str, data: dict) -> FeedItem | None:
    """Chat event type → sentence and link to the run's session, for the Overview's activity feed."""
    if not data.get("session_id"):
        return None
    url = reverse("chat:session", args=[data["session_id"]])
    run = f"Chat run {data.get('run_id')}"
    if type_ == "run_waiting":
        return FeedItem(f"{run} waits for your approval.", "warn", url + "#chat-whyidle")
    if type_ == "run_started":
        return FeedItem(f"{run} started.", "info", url)
    if type_ == "run_stopped":
        reason = data.get("reason", "")
        calm = reason in (StopReason.COMPLETED, StopReason.CANCELLED)
        words = StopReason(reason).label.lower() if reason in StopReason.values else reason.replace("_", " ")
        return FeedItem(f"{run} stopped: {words}.", "info" if calm else "warn", url)
    return None


def register() -> None:
    feed.feed_register(TOPIC, describe_event)
    hq.page_topics_register(PAGE_PREFIX, page_topics)
    hq.fragments_register("chat.run.", render_events, page=PAGE_PREFIX, family=True)
