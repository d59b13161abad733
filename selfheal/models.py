"""Playbooks (ordered steps from the registry) and every run of them, with its report."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from juggernaut.healing import registry_load

MAX_STEPS = 10


def steps_validate(steps: object) -> list[dict]:
    """A playbook's steps: at most 10, each ``{"name": <registered check or action>, "params"?: {...}}``."""
    if not isinstance(steps, list):
        raise ValidationError("steps must be a list of {name, params}")
    if len(steps) > MAX_STEPS:
        raise ValidationError(f"a playbook has at most {MAX_STEPS} steps; this one has {len(steps)}")
    checks, actions = registry_load()
    clean = []
    for i, step in enumerate(steps, 1):
        if not isinstance(step, dict) or not isinstance(step.get("name"), str):
            raise ValidationError(f"step {i} must be an object with a name")
        if step["name"] not in checks and step["name"] not in actions:
            known = ", ".join(sorted(checks) + sorted(actions))
            raise ValidationError(
                f"step {i}: {step['name']!r} is not a registered check or action (known: {known})"
            )
        params = step.get("params") or {}
        if not isinstance(params, dict):
            raise ValidationError(f"step {i}: params must be an object")
        clean.append({"name": step["name"], "params": params})
    return clean


class Playbook(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    order = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    auto_run = models.BooleanField(default=False, help_text="Auto-heal may run its auto-safe actions.")
    steps = models.JSONField(
        default=list,
        help_text='[{"name": "queue"}, {"name": "release_expired_leases", '
        '"params": {"cap": 50}}], at most 10.',
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "self_heal_playbooks"
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            self.steps = steps_validate(self.steps)
        except ValidationError as exc:
            raise ValidationError({"steps": exc.messages}) from exc


class Execution(models.Model):
    class Kind(models.TextChoices):
        DIAGNOSE = "diagnose"
        REPAIR = "repair"
        AUTO_HEAL = "auto_heal"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        PARTIAL = "partial"
        FAILED = "failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    playbook = models.ForeignKey(Playbook, null=True, blank=True, on_delete=models.SET_NULL)
    trigger = models.CharField(max_length=16, default="operator")  # operator | api | schedule | chat
    actor = models.CharField(max_length=150, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    dry_run = models.BooleanField(default=False)
    steps = models.JSONField(default=list, blank=True)
    report = models.JSONField(default=dict, blank=True)  # the diagnosis: {findings, checks}
    verification = models.JSONField(default=dict, blank=True)  # {fixed, remaining, new}
    touched = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    # A running execution beats at every step; one silent for SELFHEAL_LEASE_SECONDS died with its process.
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "self_heal_executions"
        ordering = ["-started_at", "-id"]
        # executions_list and the breakers read the newest runs of a kind
        indexes = [models.Index(fields=["kind", "-started_at"], name="self_heal_exec_kind_started")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.status}"

    def worst(self) -> str | None:
        severities = {f["severity"] for f in self.report.get("findings", [])}
        return next((s for s in ("critical", "warning", "info") if s in severities), None)
