"""The engine's tables: tasks, the workers that run them, their history, and the stop switch.

The database makes illegal states impossible where it can: a running task always carries a lease,
and one dedupe key has at most one open task.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from juggernaut.engine.sources import OPERATOR
from juggernaut.models import SingleRow


class Status(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    BLOCKED = "blocked"
    WAITING_APPROVAL = "waiting_approval"
    DONE = "done"
    FAILED = "failed"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"


OPEN_STATUSES = (Status.PENDING, Status.RUNNING, Status.BLOCKED, Status.WAITING_APPROVAL)
CLOSED_STATUSES = (Status.DONE, Status.FAILED, Status.ESCALATED, Status.CANCELLED)

# What an operator may do to a task, by its status: the pages offer exactly these actions.
ACTION_STATUSES: dict[str, tuple[str, ...]] = {
    "approve": (Status.WAITING_APPROVAL,),
    "retry": (
        Status.FAILED,
        Status.ESCALATED,
        Status.CANCELLED,
        Status.BLOCKED,
        Status.WAITING_APPROVAL,
        Status.PENDING,
    ),
    "reassign": OPEN_STATUSES,
    "priority": OPEN_STATUSES,
    "cancel": (*OPEN_STATUSES, Status.FAILED, Status.ESCALATED),
    # Seen, and left as it is: it stops asking for attention (a retry asks again if it fails again).
    "acknowledge": (Status.FAILED, Status.ESCALATED),
}


def default_max_attempts() -> int:
    return settings.ENGINE_MAX_ATTEMPTS


def live_cutoff(now=None):
    """Workers whose last heartbeat is older than this are not counted as alive (3 missed beats)."""
    return (now or timezone.now()) - timedelta(seconds=3 * settings.ENGINE_HEARTBEAT_SECONDS)


class WorkerQuerySet(models.QuerySet):
    def live(self, now=None) -> "WorkerQuerySet":
        return self.filter(stopped_at__isnull=True, last_heartbeat__gte=live_cutoff(now))

    def silent(self, now=None) -> "WorkerQuerySet":
        return self.filter(stopped_at__isnull=True, last_heartbeat__lt=live_cutoff(now))


# Who registered a worker: the built-in process, ``token:<id>`` or ``user:<id>`` (an operator session).
BUILTIN_OWNER = "builtin"
ANY_KIND = "*"


def any_kind() -> list[str]:
    return [ANY_KIND]


def worker_actor(name: str) -> str:
    """How history rows and events name a worker that acted (``worker:builtin``); a person is
    ``juggernaut.auth.actor_of``."""
    return f"worker:{name}"


class Worker(models.Model):
    """A process that runs tasks. ``incarnation`` changes on every (re)start, which fences old leases.

    Only its ``owner`` may act for it; it claims only the task ``kinds`` it declared (``*``: any).
    """

    name = models.CharField(max_length=100, unique=True)
    owner = models.CharField(max_length=64, default=BUILTIN_OWNER)
    kinds = models.JSONField(default=any_kind, blank=True)
    capabilities = models.JSONField(default=list, blank=True)
    incarnation = models.UUIDField(default=uuid.uuid4)
    concurrency = models.PositiveIntegerField(default=1)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Set by a worker that a supervisor (``make run``) restarts once its heartbeat has been silent this
    # many seconds; null when nothing restarts it, so the advice is the command to start it by hand.
    restarted_after = models.PositiveIntegerField(null=True, blank=True)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        db_table = "engine_workers"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def is_live(self, now=None) -> bool:
        return self.stopped_at is None and self.last_heartbeat >= live_cutoff(now)

    def heartbeat_age(self, now=None) -> timedelta:
        return (now or timezone.now()) - self.last_heartbeat

    def restart_advice(self, now=None) -> str:
        """What will restart this silent worker, and when; empty when nothing will (start it by hand)."""
        if not self.restarted_after:
            return ""
        left = self.restarted_after - int(self.heartbeat_age(now).total_seconds())
        when = f"in about {left} s" if left > 0 else "now"
        return (
            f"make run restarts it once its heartbeat has been silent for {self.restarted_after} s ({when}); "
            "nothing to do unless it stays silent"
        )

    def can_run(self, required: list[str] | None, kind: str | None = None) -> bool:
        """Whether this worker has every capability in ``required`` (and runs ``kind``, if given)."""
        return set(required or []) <= set(self.capabilities or []) and (kind is None or self.runs_kind(kind))

    def runs_kind(self, kind: str) -> bool:
        return ANY_KIND in (self.kinds or []) or kind in (self.kinds or [])


# The fields a transition clears, written once for every path that moves a task.
LEASE_CLEARED = {"lease_owner": None, "lease_incarnation": None, "lease_expires_at": None}
REASON_CLEARED = {"reason_code": "", "reason": "", "unblock_action": ""}


def claimed_fields(worker: "Worker", *, now, until) -> dict:
    """A claim: leased to this worker incarnation until ``until``, one more attempt, no reason left.

    The Postgres claim statement (``services.claims.CLAIM_SQL``) sets the same columns; a test
    compares the two paths row by row.
    """
    return {
        "status": Status.RUNNING,
        "lease_owner": worker,
        "lease_incarnation": worker.incarnation,
        "lease_expires_at": until,
        "attempts": F("attempts") + 1,
        "started_at": now,
        "next_attempt_at": None,
        **REASON_CLEARED,
    }


def done_fields(*, result, now) -> dict:
    """Done: the result kept, the lease fenced off (the owner stays, to say who ran it)."""
    return {
        "status": Status.DONE,
        "result": result,
        "finished_at": now,
        "lease_incarnation": None,
        "lease_expires_at": None,
        **REASON_CLEARED,
    }


def released_fields() -> dict:
    """Given back by its worker: pending again at once, and the attempt not counted."""
    return {
        "status": Status.PENDING,
        "attempts": Greatest(F("attempts") - 1, 0),
        "next_attempt_at": None,
        **LEASE_CLEARED,
    }


class TaskQuerySet(models.QuerySet):
    def open(self) -> "TaskQuerySet":
        return self.filter(status__in=OPEN_STATUSES)

    def needs_attention(self) -> "TaskQuerySet":
        """Tasks that wait for a human: escalated, failed for good, or waiting for approval."""
        return self.filter(status=Status.WAITING_APPROVAL) | self.filter(
            status__in=[Status.FAILED, Status.ESCALATED], acknowledged_at__isnull=True
        )

    def move(self, *, now, **fields) -> int:
        """Update these tasks, stamping the status change (every bulk transition goes through here)."""
        return self.update(status_changed_at=now, updated_at=now, **fields)

    def claimable(self, now=None) -> "TaskQuerySet":
        """Pending, due, and not waiting on an unfinished dependency (capabilities are checked apart)."""
        now = now or timezone.now()
        return self.filter(
            Q(status=Status.PENDING),
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
            Q(depends_on__isnull=True) | Q(depends_on__status=Status.DONE),
        )

    def claim_order(self) -> "TaskQuerySet":
        return self.order_by("-priority", "created_at", "id")


class Task(models.Model):
    """One unit of work. Its status moves only through ``services``, which record every move."""

    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    status_changed_at = models.DateTimeField(default=timezone.now)
    required_capabilities = models.JSONField(default=list, blank=True)
    # A slug the creating app registered (juggernaut.engine.sources), checked by task_create.
    source = models.CharField(max_length=20, default=OPERATOR)
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 (spec: nullable key, NULLs never collide)

    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=default_max_attempts)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField(default=600)

    lease_owner = models.ForeignKey(
        Worker, null=True, blank=True, on_delete=models.SET_NULL, related_name="leased_tasks"
    )
    lease_incarnation = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    reason_code = models.CharField(max_length=40, blank=True, help_text="Machine-readable: why it waits.")
    reason = models.TextField(blank=True, help_text="Why it is blocked or waiting, for a human.")
    unblock_action = models.CharField(max_length=300, blank=True, help_text="What would unblock it.")
    needs_approval = models.BooleanField(default=False)
    approved_by = models.CharField(max_length=150, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    depends_on = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="dependents"
    )

    acknowledged_by = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    last_error = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True, help_text='e.g. "operator:alice"')
    origin = models.JSONField(
        default=dict, blank=True, help_text='What created it, e.g. {"type": "fingerprint", "id": 12}.'
    )

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        db_table = "engine_tasks"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=Status.values), name="engine_task_status_valid"),
            # A running task always has an owner and a lease that can expire.
            models.CheckConstraint(
                condition=~Q(status=Status.RUNNING)
                | Q(
                    lease_owner__isnull=False,
                    lease_incarnation__isnull=False,
                    lease_expires_at__isnull=False,
                ),
                name="engine_task_running_has_lease",
            ),
            # task_create's dedupe: at most one open task per key (the IntegrityError path is handled).
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(status__in=OPEN_STATUSES) & Q(dedupe_key__isnull=False),
                name="engine_task_open_dedupe_uniq",
            ),
        ]
        indexes = [
            # task_claim: WHERE status = 'pending' ORDER BY priority DESC, created_at, id
            #             LIMIT n FOR UPDATE SKIP LOCKED
            models.Index(
                F("priority").desc(),
                "created_at",
                "id",
                condition=Q(status=Status.PENDING),
                name="engine_task_claim_idx",
            ),
            # engine_tick rescue: WHERE status = 'running' AND lease_expires_at < now
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status=Status.RUNNING),
                name="engine_task_lease_idx",
            ),
            # Engine page and API listings: WHERE status = ? ORDER BY created_at DESC
            models.Index(fields=["status", "-created_at"], name="engine_task_status_idx"),
            # Attention: WHERE status IN ('failed', 'escalated') AND acknowledged_at IS NULL
            models.Index(
                fields=["status"],
                condition=Q(status__in=[Status.FAILED, Status.ESCALATED], acknowledged_at__isnull=True),
                name="engine_task_attention_idx",
            ),
            # Throughput chart: WHERE finished_at >= now - 24h
            models.Index(
                fields=["finished_at"],
                condition=Q(finished_at__isnull=False),
                name="engine_task_finished_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def allowed_actions(self) -> list[str]:
        allowed = [action for action, statuses in ACTION_STATUSES.items() if self.status in statuses]
        return [a for a in allowed if not (a == "acknowledge" and self.acknowledged_at)]

    @property
    def needs_attention(self) -> bool:
        return self.status == Status.WAITING_APPROVAL or (
            self.status in (Status.FAILED, Status.ESCALATED) and self.acknowledged_at is None
        )

    def age(self, now=None) -> timedelta:
        return (now or timezone.now()) - self.created_at

    def apply(self, *, now, **fields) -> None:
        """Set a transition's fields on this row (saved by the caller), stamping the status change."""
        for key, value in {**fields, "status_changed_at": now}.items():
            setattr(self, key, value)

    def is_overdue(self, now=None) -> bool:
        return (
            self.status == Status.RUNNING
            and self.started_at is not None
            and (now or timezone.now()) - self.started_at > timedelta(seconds=self.timeout_seconds)
        )


class TaskEvent(models.Model):
    """One state change of a task: who moved it, from what, to what, and why."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    actor = models.CharField(max_length=150, help_text='"worker:builtin", "operator:alice", "autonomy"')
    reason = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "engine_task_events"
        ordering = ["at", "id"]
        # A task's history page: WHERE task_id = ? ORDER BY at
        indexes = [models.Index(fields=["task", "at"], name="engine_taskevent_task_idx")]

    def __str__(self) -> str:
        return f"#{self.task_id} {self.from_status or '∅'} → {self.to_status} by {self.actor}"


class EngineState(SingleRow):
    """The single row holding the stop switch and the stuck detector's current findings."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    paused = models.BooleanField(default=False)
    paused_by = models.CharField(max_length=150, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    findings = models.JSONField(default=dict, blank=True)
    last_tick_at = models.DateTimeField(null=True, blank=True)
    # The start of the autonomy loop's grace: a loop that never ran is news only some minutes after.
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "engine_state"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="engine_state_single_row")]

    def __str__(self) -> str:
        return f"paused by {self.paused_by}" if self.paused else "running"
