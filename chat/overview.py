"""The Overview's chat line: what the active runs are doing, or why the brain is idle."""

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from chat.models import ChatRun, Phase, RunStatus, StopReason, ToolExecution, ToolStatus
from juggernaut.areas import Action, AreaStatus
from juggernaut.timefmt import duration_text

QUEUED_TOO_LONG_SECONDS = 30
RUNNER_PROCESS = {
    "jobs": "the jobs process (manage.py qcluster)",
    "engine": "an engine worker (manage.py engine_worker)",
}
# Stops that are the normal end of a turn, or an operator's own choice: nothing to fix.
CALM_STOPS = (StopReason.COMPLETED, StopReason.CANCELLED)


def _doing(run: ChatRun, now) -> str:
    since = run.started_at or run.created_at
    if run.status == RunStatus.WAITING_APPROVAL:
        tools = list(
            run.tool_executions.filter(status=ToolStatus.WAITING_APPROVAL).values_list("tool", flat=True)
        )
        return f"run {run.pk} waits for approval of {', '.join(tools) or 'a tool call'}"
    if run.status == RunStatus.QUEUED:
        return f"run {run.pk} queued for {duration_text(now - run.queued_at)}"
    return f"run {run.pk} {Phase(run.phase).label.lower()} ({duration_text(now - since)})"


def chat_area_status() -> AreaStatus:
    """Active runs and what they do; else the last stop, its reason and what lets the work go on."""
    now = timezone.now()
    active = list(ChatRun.objects.active().order_by("id")[:5])
    if active:
        waiting = ToolExecution.objects.filter(status=ToolStatus.WAITING_APPROVAL, run__in=active).count()
        stale = [
            r
            for r in active
            if r.status == RunStatus.QUEUED and (now - r.queued_at).total_seconds() > QUEUED_TOO_LONG_SECONDS
        ]
        text = "; ".join(_doing(r, now) for r in active)
        if waiting:
            first = next(r for r in active if r.status == RunStatus.WAITING_APPROVAL)
            where = reverse("chat:session", args=[first.session_id]) + "#chat-whyidle"
            return AreaStatus(
                "warn",
                text.capitalize() + ".",
                "Approve or deny the call on its session's page.",
                actions=[Action("Open it to approve or deny", href=where)],
                attention=waiting,
            )
        if stale:
            return AreaStatus(
                "warn",
                text.capitalize() + ".",
                f"Nothing has picked the run up: is {RUNNER_PROCESS.get(settings.CHAT_RUNNER, 'its runner')} running?",
            )
        return AreaStatus("busy", text.capitalize() + ".")
    last = ChatRun.objects.filter(status=RunStatus.STOPPED).order_by("-ended_at", "-id").first()
    if last is None:
        return AreaStatus(
            "idle",
            "No chat runs yet.",
            actions=[Action("Start a session on the Chat page", href=reverse("chat:index"))],
        )
    when = duration_text(now - (last.ended_at or last.created_at))
    text = f"Idle. Run {last.pk} stopped {when} ago: {StopReason(last.stop_reason).label.lower()}."
    state = "idle" if last.stop_reason in CALM_STOPS else "warn"
    return AreaStatus(state, text, f"{last.stop_detail} {last.stop_action}".strip())
