"""What the Overview and the Self-Heal page say: the last diagnosis, its age, its worst finding."""

from django.template.loader import render_to_string
from django.utils import timezone

from juggernaut.areas import Action, AreaStatus
from juggernaut.feed import FeedItem
from juggernaut.healing import registry_load
from juggernaut.timefmt import duration_text
from selfheal import services

GROUPS = ("critical", "warning", "info")


def selfheal_area_status() -> AreaStatus:
    last = services.last_diagnosis()
    diagnose = Action("Open Self-Heal to diagnose", href="/selfheal/")
    if last is None:
        return AreaStatus("idle", "No diagnosis yet.", actions=[diagnose])
    age = duration_text(timezone.now() - last.started_at)
    findings = last.report.get("findings", [])
    worst = last.worst()
    breaker = services.breaker_state()
    detail = f"Auto-heal stopped: {breaker}." if breaker else ""
    if not findings:
        return AreaStatus(
            "ok",
            f"Last diagnosis {age} ago: all {len(last.report.get('checks', []))} checks clean.",
            detail=detail,
            actions=[diagnose],
        )
    top = findings[0]
    state = {"critical": "error", "warning": "warn"}.get(worst, "ok")
    critical = sum(f["severity"] == "critical" for f in findings)
    return AreaStatus(
        state,
        f"Last diagnosis {age} ago: {top['title']}",
        detail=detail,
        actions=[Action("Open Self-Heal", href="/selfheal/")],
        attention=critical,
    )


def context() -> dict:
    last = services.last_diagnosis()
    _, actions = registry_load()
    findings = [
        f | {"action": f["action"] | {"label": actions[f["action"]["name"]].label}}
        if f.get("action") and f["action"]["kind"] == "safe" and f["action"]["name"] in actions
        else f
        for f in (last.report.get("findings", []) if last else [])
    ]
    latest = _latest()
    return {
        "progress_run": latest,
        "progress_steps": latest.steps if latest else [],
        "last": last,
        "groups": [(g, [f for f in findings if f["severity"] == g]) for g in GROUPS],
        "history": services.repairs_recent(),
        "breaker": services.breaker_state(),
    }


def _latest():
    """The newest run, a repair with its judged outcome (a diagnosis has none to judge)."""
    latest = services.last_execution()
    if latest is not None and latest.kind != latest.Kind.DIAGNOSE:
        latest.outcome = services.execution_outcome(latest)
    return latest


def render_progress() -> str:
    """The latest run's steps so far (each check or action as it finishes)."""
    latest = _latest()
    return render_to_string(
        "selfheal/_progress.html", {"run": latest, "steps": latest.steps if latest else [], "oob": True}
    )


def render_fragments() -> str:
    ctx = context() | {"oob": True}
    return (
        render_progress()
        + render_to_string("selfheal/_report.html", ctx)
        + render_to_string("selfheal/_history.html", ctx)
    )


def describe_event(type_: str, data: dict) -> FeedItem:
    """Self-heal events for the activity feed: one line per finished run, linked; its start and each
    step are folded into that line."""
    if type_ == "step" or type_.endswith("_started"):
        return FeedItem("")
    url = "/selfheal/#selfheal-report"
    if data.get("id") and data.get("kind", "diagnose") != "diagnose":
        url = f"/selfheal/#selfheal-exec-{data['id']}"
    if type_.endswith("_finished"):
        severity = {"critical": "error", "warning": "warn"}.get(data.get("worst") or "", "info")
        if data.get("kind") != "diagnose":
            severity = "warn" if data.get("status") in ("failed", "partial") else "info"
        return FeedItem(f"{data.get('message', type_)}.", severity, url)
    return FeedItem(data.get("message") or type_.replace("_", " ").capitalize(), "warn", url)


def render_events(envelopes: list[dict]) -> str:
    if any(e["type"].endswith("_finished") for e in envelopes):
        return render_fragments()
    return render_progress()
