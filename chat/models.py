"""The chat brain's tables: sessions, their messages, runs (one user turn until its stop), every tool
execution, and each run's budget.

The database keeps the rules it can: one active run per session, statuses and roles from their lists,
one execution per tool call of a run, one budget override per session.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

MONEY = {"max_digits": 18, "decimal_places": 10}


def _in(field: str, choices) -> Q:
    return Q(**{f"{field}__in": list(choices.values)})


class SessionStatus(models.TextChoices):
    IDLE = "idle"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"


class ChatSessionQuerySet(models.QuerySet):
    def owned_by(self, user) -> "ChatSessionQuerySet":
        return self.filter(owner=user)


class ChatSession(models.Model):
    """A conversation of one operator with the brain, in one routing mode (a policy's ``mode``)."""

    title = models.CharField(max_length=200)
    mode = models.SlugField(max_length=40)
    status = models.CharField(max_length=20, choices=SessionStatus.choices, default=SessionStatus.IDLE)
    cost_usd = models.DecimalField(default=Decimal(0), **MONEY)  # budget used, over all its runs
    steps_used = models.PositiveIntegerField(default=0)
    last_stop_reason = models.CharField(max_length=32, blank=True, default="")
    last_stop_detail = models.TextField(blank=True, default="")
    last_stop_action = models.TextField(blank=True, default="")
    guardrails = models.JSONField(default=dict, blank=True)  # the last run's rule streaks
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ChatSessionQuerySet.as_manager()

    class Meta:
        db_table = "chat_sessions"
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=_in("status", SessionStatus), name="chat_session_status_valid"),
        ]
        # The sessions list: an owner's sessions, newest first.
        indexes = [models.Index(fields=["owner", "-updated_at"], name="chat_session_owner_idx")]

    def __str__(self) -> str:
        return f"{self.title} ({self.mode})"

    @property
    def routing_key(self) -> str:
        """The session as routing's budgets and usage rows name it."""
        return f"chat-{self.pk}"


class Role(models.TextChoices):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    SYSTEM = "system"
    NOTE = "note"  # shown to people (a condensed history, a guardrail's steer); sent as a system note


class ChatMessage(models.Model):
    """One message of a session: what the operator said, the model answered, a tool returned, or a note."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    run = models.ForeignKey(
        "ChatRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, default="")
    tool_calls = models.JSONField(default=list, blank=True)  # OpenAI-style calls of an assistant message
    tool_call_id = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "chat_messages"
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=_in("role", Role), name="chat_message_role_valid")]
        # A session's conversation in order (the prompt, the page).
        indexes = [models.Index(fields=["session", "id"], name="chat_message_session_idx")]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"

    def as_prompt(self) -> dict:
        """This message as the model reads it."""
        if self.role == Role.ASSISTANT:
            out: dict = {"role": "assistant", "content": self.content or None}
            if self.tool_calls:
                out["tool_calls"] = self.tool_calls
            return out
        if self.role == Role.TOOL:
            return {"role": "tool", "tool_call_id": self.tool_call_id, "content": self.content}
        if self.role == Role.NOTE:
            return {"role": "system", "content": self.content}
        return {"role": self.role, "content": self.content}


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    STOPPED = "stopped"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_APPROVAL)


class Phase(models.TextChoices):
    QUEUED = "queued"
    ROUTING = "routing"
    CALLING_MODEL = "calling_model"
    WAITING_FIRST_TOKEN = "waiting_first_token"  # noqa: S105 - a run status name, not a password
    STREAMING = "streaming"
    TOOL_RUNNING = "tool_running"
    WAITING_APPROVAL = "waiting_approval"
    RETRYING = "retrying"
    DONE = "done"


class StopReason(models.TextChoices):
    COMPLETED = "completed"
    MAX_ITERATIONS = "max_iterations"
    BUDGET_EXCEEDED = "budget_exceeded"
    TIME_LIMIT = "time_limit"
    STUCK_LOOP = "stuck_loop"
    GUARDRAIL_BLOCKED = "guardrail_blocked"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    MODEL_ERROR = "model_error"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


class ChatRunQuerySet(models.QuerySet):
    def active(self) -> "ChatRunQuerySet":
        return self.filter(status__in=ACTIVE_RUN_STATUSES)


class ChatRun(models.Model):
    """One user turn, from the message to its one stop: status, phase, timings, counters, the stop.

    A process executing the run holds it by ``lease_owner`` and proves it is alive with ``heartbeat_at``;
    a run whose heartbeat stopped is closed as ``interrupted`` by the sweep. A run that no process picks
    up is handed over once more after ``CHAT_QUEUED_TIMEOUT_SECONDS``, then closed the same way.
    """

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    phase = models.CharField(max_length=24, choices=Phase.choices, default=Phase.QUEUED)
    mode = models.SlugField(max_length=40)
    resumed_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)  # the message arrived
    # When it last became queued (created, or an approval let it go on), and how often the sweep handed
    # it to a runner again because nothing picked it up (see runs_retry_queued).
    queued_at = models.DateTimeField(default=timezone.now)
    requeues = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)  # a process first took it
    ended_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.CharField(max_length=150, blank=True, default="")
    stop_reason = models.CharField(max_length=32, choices=StopReason.choices, blank=True, default="")
    stop_detail = models.TextField(blank=True, default="")
    stop_action = models.TextField(blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")  # the last model that answered
    # Counters: model calls, tool calls and failures, retries of the model, guardrail interventions.
    iterations = models.PositiveIntegerField(default=0)
    tool_calls = models.PositiveIntegerField(default=0)
    tool_errors = models.PositiveIntegerField(default=0)
    model_retries = models.PositiveIntegerField(default=0)
    guardrail_steers = models.PositiveIntegerField(default=0)
    guardrail_blocks = models.PositiveIntegerField(default=0)
    guardrails = models.JSONField(default=dict, blank=True)  # rule -> {"streak", "action", "fingerprint"}

    objects = ChatRunQuerySet.as_manager()

    class Meta:
        db_table = "chat_runs"
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=_in("status", RunStatus), name="chat_run_status_valid"),
            models.CheckConstraint(condition=_in("phase", Phase), name="chat_run_phase_valid"),
            models.CheckConstraint(
                condition=Q(stop_reason="") | _in("stop_reason", StopReason),
                name="chat_run_stop_reason_valid",
            ),
            # A stopped run has its reason; an active one has none.
            models.CheckConstraint(
                condition=(Q(status=RunStatus.STOPPED) & ~Q(stop_reason=""))
                | (~Q(status=RunStatus.STOPPED) & Q(stop_reason="")),
                name="chat_run_stopped_has_reason",
            ),
            models.UniqueConstraint(
                fields=["session"],
                condition=Q(status__in=ACTIVE_RUN_STATUSES),
                name="chat_run_one_active_per_session",
            ),
        ]
        indexes = [
            # The interrupted sweep: running runs by heartbeat age.
            models.Index(
                fields=["heartbeat_at"], condition=Q(status=RunStatus.RUNNING), name="chat_run_running_hb_idx"
            ),
            # The queued sweep: queued runs by how long they have waited.
            models.Index(
                fields=["queued_at"], condition=Q(status=RunStatus.QUEUED), name="chat_run_queued_at_idx"
            ),
            # The Overview line: what is active now.
            models.Index(
                fields=["status"], condition=Q(status__in=ACTIVE_RUN_STATUSES), name="chat_run_active_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status}{', ' + self.stop_reason if self.stop_reason else ''})"

    @property
    def topic(self) -> str:
        return f"chat.run.{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES


class ToolStatus(models.TextChoices):
    WAITING_APPROVAL = "waiting_approval"
    APPROVED = "approved"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    BLOCKED = "blocked"  # a guardrail refused to run it
    DENIED = "denied"  # the operator refused it
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


OPEN_TOOL_STATUSES = (ToolStatus.WAITING_APPROVAL, ToolStatus.APPROVED, ToolStatus.RUNNING)


class ToolExecutionQuerySet(models.QuerySet):
    def went(self) -> "ToolExecutionQuerySet":
        """Calls that ran, run or will run once approved (not those refused before running)."""
        return self.filter(Q(status__in=[*OPEN_TOOL_STATUSES, ToolStatus.OK]) | Q(duration_ms__isnull=False))


class ToolExecution(models.Model):
    """One tool call of a run, from the model's request to its result, error or refusal.

    ``call_fingerprint`` names the call (tool + canonical arguments without volatile keys);
    ``failure_fingerprint`` names how it failed (call + error type + the error's normalised first line).
    """

    run = models.ForeignKey(ChatRun, on_delete=models.CASCADE, related_name="tool_executions")
    tool_call_id = models.CharField(max_length=100)
    tool = models.CharField(max_length=100)
    arguments = models.JSONField(default=dict, blank=True)
    safe = models.BooleanField(default=True)
    status = models.CharField(max_length=20, choices=ToolStatus.choices, default=ToolStatus.RUNNING)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    error_type = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    call_fingerprint = models.CharField(max_length=64)
    failure_fingerprint = models.CharField(max_length=64, blank=True, default="")
    iteration = models.PositiveIntegerField()
    decided_by = models.CharField(max_length=150, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)

    objects = ToolExecutionQuerySet.as_manager()

    class Meta:
        db_table = "tool_executions"
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=_in("status", ToolStatus), name="tool_execution_status_valid"),
            models.UniqueConstraint(fields=["run", "tool_call_id"], name="tool_execution_one_per_call"),
        ]
        indexes = [
            # Pending approvals (the run's Approve/Deny buttons, the Why-idle panel).
            models.Index(
                fields=["run"], condition=Q(status=ToolStatus.WAITING_APPROVAL), name="tool_exec_waiting_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tool} ({self.status})"

    @property
    def ok(self) -> bool:
        return self.status == ToolStatus.OK


class ChatBudget(models.Model):
    """Limits and usage: steps (model + tool calls), model calls, wall seconds, cost, retries per
    failure fingerprint.

    A row with ``run`` empty is a session's override (empty limits fall back to the mode's defaults);
    each run gets its own row with the limits it ran under and what it used.
    """

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="budgets")
    run = models.OneToOneField(
        ChatRun, on_delete=models.CASCADE, null=True, blank=True, related_name="budget"
    )
    max_steps = models.PositiveIntegerField(null=True, blank=True)
    max_iterations = models.PositiveIntegerField(null=True, blank=True)
    max_wall_seconds = models.PositiveIntegerField(null=True, blank=True)
    max_cost_usd = models.DecimalField(null=True, blank=True, max_digits=14, decimal_places=6)
    max_retries = models.PositiveIntegerField(null=True, blank=True)  # per failure fingerprint
    steps_used = models.PositiveIntegerField(default=0)
    wall_seconds_used = models.FloatField(default=0)
    cost_usd_used = models.DecimalField(default=Decimal(0), **MONEY)
    retries_used = models.JSONField(default=dict, blank=True)  # failure fingerprint -> failures
    updated_at = models.DateTimeField(auto_now=True)

    LIMITS = ("max_steps", "max_iterations", "max_wall_seconds", "max_cost_usd", "max_retries")

    class Meta:
        db_table = "chat_budgets"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session"], condition=Q(run__isnull=True), name="chat_budget_one_override_per_session"
            ),
            models.CheckConstraint(condition=Q(wall_seconds_used__gte=0), name="chat_budget_wall_nonneg"),
        ]

    def __str__(self) -> str:
        return (
            f"budget of run {self.run_id}" if self.run_id else f"budget override of session {self.session_id}"
        )

    def as_dict(self) -> dict:
        """Limits and usage, as the ``budget`` event and the API carry them."""
        return {
            "steps": {"used": self.steps_used, "limit": self.max_steps},
            "iterations": {"used": self.run.iterations if self.run_id else 0, "limit": self.max_iterations},
            "wall_seconds": {"used": round(self.wall_seconds_used, 3), "limit": self.max_wall_seconds},
            "cost_usd": {
                "used": str(self.cost_usd_used.normalize()),
                "limit": None if self.max_cost_usd is None else str(self.max_cost_usd.normalize()),
            },
            "retries": {"used": max(self.retries_used.values(), default=0), "limit": self.max_retries},
        }
