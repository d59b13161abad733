"""Diagnose, repair and auto-heal: registered checks run concurrently, safe actions run bounded.

- ``diagnose_run``: every check of the DiagnoseSystem playbook (all registered checks without one) in
  its own thread with its own timeout; a hanging check is reported as ``timeout`` and delays nobody.
- ``repair_run``: diagnose, run the safe actions the findings name (or those asked for) under per-run
  caps and per-hour breakers, then diagnose again and sort each finding into fixed / remaining / new.
- ``auto_heal_run``: the same, unattended, with only auto-safe actions of auto-run playbooks, and it
  stops (breaker open) after too many scheduled runs or rows in an hour, or after a repair that did not
  verify. Runs an operator asks for are limited per operator instead (``auto_heal_manual_check``).

Every step is published on topic ``selfheal`` as it happens.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Q, Sum
from django.utils import timezone

from juggernaut.auth import actor_of
from juggernaut.events import publish
from juggernaut.healing import Finding, action_label, as_plain, registry_load
from selfheal.errors import SelfHealError
from selfheal.models import Execution, Playbook

log = logging.getLogger(__name__)

TOPIC = "selfheal"
DIAGNOSE_PLAYBOOK = "DiagnoseSystem"
REPAIR_PLAYBOOK = "RepairCommonIssues"
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _in_thread(func, now: datetime) -> tuple[list[Finding], int]:
    """Run a check on its own connection, closed afterwards (threads do not share Django's); its
    findings and its own duration in ms."""
    started = time.monotonic()
    try:
        return func(now), int((time.monotonic() - started) * 1000)
    finally:
        connection.close()


def _check_names() -> list[str]:
    checks, _ = registry_load()
    book = Playbook.objects.filter(name=DIAGNOSE_PLAYBOOK, enabled=True).first()
    if book:
        return [s["name"] for s in book.steps if s["name"] in checks]
    return sorted(checks)


def checks_run(names: list[str] | None = None, *, now: datetime | None = None, on_result=None) -> dict:
    """The report ``{findings, checks}``: each check concurrently, each bounded by its timeout."""
    checks, _ = registry_load()
    now = now or timezone.now()
    names = names if names is not None else _check_names()
    pool = ThreadPoolExecutor(max_workers=max(len(names), 1), thread_name_prefix="selfheal-check")
    started = time.monotonic()
    futures = {n: pool.submit(_in_thread, checks[n].func, now) for n in names}
    findings: list[Finding] = []
    results = []
    for name, future in futures.items():
        timeout = checks[name].timeout or settings.SELFHEAL_CHECK_TIMEOUT_SECONDS
        try:
            found, elapsed = future.result(timeout=max(0.0, started + timeout - time.monotonic()))
            status = "finding" if found else "ok"
            findings += found
            error = ""
        except FutureTimeout:
            status, error, elapsed = "timeout", f"no answer within {timeout:g} s", int(timeout * 1000)
        except Exception as exc:  # a broken check is a result, not a crash of the diagnosis
            log.exception("self-heal check %s failed", name)
            status, error = "error", exc.__class__.__name__
            elapsed = int((time.monotonic() - started) * 1000)
        results.append(
            {"name": name, "status": status, "duration_ms": elapsed} | ({"error": error} if error else {})
        )
        if on_result:
            on_result(results)
    pool.shutdown(wait=False, cancel_futures=True)
    findings.sort(key=lambda f: SEVERITY_ORDER[f.severity])
    return {"findings": as_plain(findings), "checks": results, "keys": [f.key for f in findings]}


def _finish(execution: Execution, **fields) -> Execution:
    """Record the outcome, once: an execution taken over for dead (see ``executions_take_over``) keeps
    the verdict it was given, and this late one is dropped."""
    now = timezone.now()
    fields |= {"finished_at": now, "duration_ms": int((now - execution.started_at).total_seconds() * 1000)}
    if not Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).update(**fields):
        log.warning(
            "self-heal %s #%s was taken over meanwhile; its outcome is dropped", execution.kind, execution.pk
        )
        execution.refresh_from_db()
        return execution
    for k, v in fields.items():
        setattr(execution, k, v)
    publish(TOPIC, f"{execution.kind}_finished", _summary(execution))
    return execution


def _beat(execution_id: int, **fields) -> None:
    """A running execution's progress, and its proof of life."""
    Execution.objects.filter(pk=execution_id, status=Execution.Status.RUNNING).update(
        heartbeat_at=timezone.now(), **fields
    )


def executions_take_over(*, now: datetime | None = None) -> list[int]:
    """Close, as failed, running executions whose heartbeat is older than ``SELFHEAL_LEASE_SECONDS``:
    their process died (killed, machine gone) between two steps. Returns their ids. Each close is one
    conditional update on the heartbeat it judged, so an execution that beat since keeps running."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SELFHEAL_LEASE_SECONDS)
    closed = []
    dead = Execution.objects.filter(status=Execution.Status.RUNNING, heartbeat_at__lt=cutoff)
    for execution in dead:
        age = int((now - execution.heartbeat_at).total_seconds())
        step = {
            "name": "interrupted",
            "status": "failed",
            "output": f"its process stopped sending heartbeats {age} s ago (it died or was killed); "
            "the steps above are all it did",
            "touched": 0,
        }
        changed = Execution.objects.filter(
            pk=execution.pk, status=Execution.Status.RUNNING, heartbeat_at=execution.heartbeat_at
        ).update(
            status=Execution.Status.FAILED,
            steps=[*execution.steps, step],
            finished_at=now,
            duration_ms=int((now - execution.started_at).total_seconds() * 1000),
        )
        if changed:
            execution.refresh_from_db()
            publish(TOPIC, f"{execution.kind}_finished", _summary(execution))
            closed.append(execution.pk)
    return closed


def _summary(execution: Execution) -> dict:
    findings = execution.report.get("findings", [])
    worst = execution.worst()
    return {
        "id": execution.pk,
        "kind": execution.kind,
        "status": execution.status,
        "worst": worst,
        "findings": len(findings),
        "touched": execution.touched,
        "message": _message(execution, findings, worst),
    }


def _message(execution: Execution, findings: list, worst: str | None) -> str:
    if execution.kind == Execution.Kind.DIAGNOSE:
        n = len(findings)
        return f"Diagnosis #{execution.pk}: {n} finding{'s' if n != 1 else ''}" + (
            f", worst {worst}" if worst else ""
        )
    outcome = execution_outcome(execution)
    words = "Repair" if execution.kind == Execution.Kind.REPAIR else "Auto-heal"
    return f"{words} #{execution.pk} {outcome['words']}" + (
        f": {outcome['reason']}" if outcome["reason"] else ""
    )


OUTCOME_WORDS = {
    "running": "running",
    "dry_run": "dry run (changed nothing)",
    "fixed": "fixed ✓",
    "in_progress": "in progress",
    "did_not_help": "did not help",
    "nothing": "had nothing to do",
}


def execution_outcome(execution: Execution) -> dict:
    """What a repair achieved, judged by what it aimed at, never by its steps having run:
    ``{"state": running|dry_run|fixed|in_progress|did_not_help|nothing, "words", "reason"}``.

    "fixed" only when every finding it targeted is gone from the diagnosis after it and the work it
    handed on (requeued tasks) ran and succeeded; "in progress" while that work waits to run; "did
    not help", with the reason, when a target remains, a step failed, or the handed-on work failed
    again."""
    _, actions = registry_load()

    def out(state: str, reason: str = "") -> dict:
        return {"state": state, "words": OUTCOME_WORDS[state], "reason": reason}

    if execution.status == Execution.Status.RUNNING:
        return out("running")
    if execution.dry_run:
        return out("dry_run")
    broken = [s for s in execution.steps if s.get("status") in ("failed", "not_fixed", "open", "skipped")]
    v = execution.verification or {}
    left = [
        f["title"]
        for f in v.get("remaining", [])
        if f.get("action") and f["action"]["name"] in {s["name"] for s in execution.steps}
    ]
    if broken or left or execution.status == Execution.Status.FAILED:
        why = [f"{action_label(s['name'])}: {s.get('output', '')}" for s in broken] + [
            f"still found: {t}" for t in left
        ]
        return out("did_not_help", "; ".join(why)[:600] or "the findings it aimed at remain")
    pending, reasons = False, []
    for step in execution.steps:
        act = actions.get(step["name"])
        if not step.get("watch") or act is None or act.settle is None:
            continue
        state, reason = act.settle(step["watch"])
        if state == "did_not_help":
            return out("did_not_help", reason)
        pending |= state == "in_progress"
        reasons.append(reason)
    if pending:
        return out("in_progress", "; ".join(reasons))
    if not execution.touched and not v.get("fixed") and not reasons:
        return out("nothing")
    return out("fixed", "; ".join(reasons))


def diagnose_run(*, trigger: str = "operator", actor: str = "", now: datetime | None = None) -> Execution:
    """Run the diagnosis and record it as an execution (its report inline)."""
    executions_take_over()
    execution = Execution.objects.create(kind=Execution.Kind.DIAGNOSE, trigger=trigger, actor=actor)
    publish(TOPIC, "diagnose_started", {"id": execution.pk, "message": "diagnosis started"})

    def progress(results: list[dict]) -> None:
        _beat(execution.pk, steps=results)
        publish(TOPIC, "step", {"id": execution.pk, **results[-1]})

    report = checks_run(now=now, on_result=progress)
    return _finish(execution, status=Execution.Status.SUCCEEDED, report=report, steps=report["checks"])


def _hour_usage(now: datetime, *, exclude: int | None = None) -> tuple[int, int]:
    """(the schedule's auto-heal runs, rows touched by any repair) in the last hour, not counting run
    ``exclude`` (dry runs change nothing). Runs an operator asked for have their own per-operator
    limit (``auto_heal_manual_check``), so asking can never open the breaker that guards the schedule."""
    recent = Execution.objects.filter(
        kind__in=[Execution.Kind.REPAIR, Execution.Kind.AUTO_HEAL],
        dry_run=False,
        started_at__gte=now - timedelta(hours=1),
    ).exclude(pk=exclude)
    rows = recent.aggregate(n=Sum("touched"))["n"] or 0
    return recent.filter(kind=Execution.Kind.AUTO_HEAL, trigger="schedule").count(), rows


def breaker_state(*, now: datetime | None = None, exclude: int | None = None) -> str:
    """Why auto-heal must not run now, in words; empty when it may."""
    now = now or timezone.now()
    runs, rows = _hour_usage(now, exclude=exclude)
    if runs >= settings.SELFHEAL_MAX_RUNS_PER_HOUR:
        return (
            f"{runs} scheduled auto-heal runs in the last hour (limit {settings.SELFHEAL_MAX_RUNS_PER_HOUR})"
        )
    if rows >= settings.SELFHEAL_MAX_ROWS_PER_HOUR:
        return f"{rows} rows touched in the last hour (limit {settings.SELFHEAL_MAX_ROWS_PER_HOUR})"
    last = (
        Execution.objects.filter(
            kind=Execution.Kind.AUTO_HEAL, dry_run=False, started_at__gte=now - timedelta(hours=1)
        )
        .exclude(pk=exclude)
        .exclude(status=Execution.Status.RUNNING)
        .exclude(steps__0__name="circuit_breaker")
        .first()
    )
    if last and last.status in (Execution.Status.PARTIAL, Execution.Status.FAILED):
        return f"auto-heal #{last.pk} did not verify ({last.status}); an operator must look first"
    return ""


def _playbook_caps(names: list[str]) -> dict[str, int]:
    caps: dict[str, int] = {}
    for book in Playbook.objects.filter(enabled=True):
        for step in book.steps:
            if step["name"] in names and "cap" in step.get("params", {}):
                caps[step["name"]] = int(step["params"]["cap"])
    return caps


def _auto_actions() -> list[str]:
    _, actions = registry_load()
    return [
        s["name"]
        for book in Playbook.objects.filter(enabled=True, auto_run=True)
        for s in book.steps
        if s["name"] in actions and actions[s["name"]].auto
    ]


def _verify(before: dict, after: dict, targets: set[str], *, watched: set[str] = frozenset()) -> dict:
    """Sort findings into fixed / remaining / new. A finding gone only because its action handed the
    work on (a requeued task has yet to run) is "awaiting", not fixed: ``execution_outcome`` judges it."""
    b = dict(zip(before["keys"], before["findings"], strict=True))
    a = dict(zip(after["keys"], after["findings"], strict=True))

    def handed_on(f: dict) -> bool:
        return bool(f["action"]) and f["action"]["name"] in watched

    return {
        "fixed": [b[k] for k in b if k not in a and not handed_on(b[k])],
        "awaiting": [b[k] for k in b if k not in a and handed_on(b[k])],
        "remaining": [a[k] for k in a if k in b],
        "new": [a[k] for k in a if k not in b],
        "targets": sorted(targets),
        "targets_remaining": sorted(k for k in targets if k in a),
    }


def repair_run(
    *,
    actions: list[str] | None = None,
    dry_run: bool = False,
    trigger: str = "operator",
    actor: str = "",
    auto: bool = False,
    now: datetime | None = None,
) -> Execution:
    """Run safe actions bounded by caps and breakers, then verify by diagnosing again."""
    _, registered = registry_load()
    unknown = sorted(set(actions or []) - set(registered))
    if unknown:
        raise SelfHealError(
            "unknown_action",
            f"not a registered safe action: {', '.join(unknown)}",
            details={"known": sorted(registered)},
        )
    kind = Execution.Kind.AUTO_HEAL if auto else Execution.Kind.REPAIR
    executions_take_over()  # a dead run's verdict counts in the breakers below
    execution = Execution.objects.create(kind=kind, trigger=trigger, actor=actor, dry_run=dry_run)
    publish(TOPIC, f"{kind}_started", {"id": execution.pk, "message": f"{kind.replace('_', '-')} started"})
    if auto:
        why = breaker_state(now=now, exclude=execution.pk)
        if why:
            step = {"name": "circuit_breaker", "status": "open", "output": why, "touched": 0}
            publish(TOPIC, "breaker_open", {"id": execution.pk, "message": f"auto-heal stopped: {why}"})
            return _finish(execution, status=Execution.Status.FAILED, steps=[step])
    before = checks_run(now=now)
    wanted = [
        f["action"]["name"] for f in before["findings"] if f["action"] and f["action"]["kind"] == "safe"
    ]
    chosen = list(dict.fromkeys(actions if actions else wanted))
    if auto:
        allowed = _auto_actions()
        chosen = [n for n in chosen if n in allowed]
    targets = {
        k
        for k, f in zip(before["keys"], before["findings"], strict=True)
        if f["action"] and f["action"]["name"] in chosen
    }
    caps = _playbook_caps(chosen)
    _, rows_hour = _hour_usage(now or timezone.now(), exclude=execution.pk)
    budget = min(settings.SELFHEAL_MAX_ROWS_PER_RUN, max(settings.SELFHEAL_MAX_ROWS_PER_HOUR - rows_hour, 0))
    steps, touched, failed = [], 0, 0
    for name in chosen:
        act = registered[name]
        cap = min(act.cap, caps.get(name, act.cap), budget - touched)
        step = {
            "name": name,
            "label": act.label,
            "touches": act.touches,
            "reversible": act.reversible,
            "cap": cap,
        }
        begun = time.monotonic()
        _beat(execution.pk)
        if cap <= 0:
            step |= {"status": "skipped", "output": "per-run or per-hour row cap reached", "touched": 0}
        else:
            try:
                out = act.func(dry_run=dry_run, cap=cap, now=now or timezone.now())
                status = "dry_run" if dry_run else ("ok" if out.fixed else "not_fixed")
                step |= {
                    "status": status,
                    "output": out.output,
                    "touched": out.touched,
                    "changes": out.changes[:50],
                }
                if out.watch and not dry_run:
                    step["watch"] = out.watch[:200]
                touched += 0 if dry_run else out.touched
                failed += status == "not_fixed"
            except Exception as exc:  # an action that breaks is a failed step; the others still run
                log.exception("self-heal action %s failed", name)
                step |= {"status": "failed", "output": f"{exc.__class__.__name__}: {exc}"[:300], "touched": 0}
                failed += 1
        step["duration_ms"] = int((time.monotonic() - begun) * 1000)
        steps.append(step)
        _beat(execution.pk, steps=steps, touched=touched)
        publish(
            TOPIC,
            "step",
            {"id": execution.pk, **{k: step[k] for k in ("name", "status", "output", "touched")}},
        )
    if dry_run:
        return _finish(execution, status=Execution.Status.SUCCEEDED, steps=steps, touched=0, report=before)
    _beat(execution.pk)
    after = checks_run()
    verification = _verify(before, after, targets, watched={s["name"] for s in steps if s.get("watch")})
    remaining = len(verification["targets_remaining"])
    if not failed and not remaining:
        status = Execution.Status.SUCCEEDED
    elif remaining < len(targets) or (failed < len(steps)):
        status = Execution.Status.PARTIAL
    else:
        status = Execution.Status.FAILED
    return _finish(
        execution, status=status, steps=steps, touched=touched, report=after, verification=verification
    )


def auto_heal_manual_check(user, *, now: datetime | None = None) -> None:
    """Refuse (429) an operator's auto-heal run past SELFHEAL_MANUAL_RUNS_PER_HOUR of theirs in the
    last hour, whichever of their tokens or sessions asked. Other operators and the schedule are not
    affected."""
    now = now or timezone.now()
    actor = actor_of(user)  # "operator:alice"; a token of hers acts as "operator:alice (token …)"
    asked = Execution.objects.filter(
        Q(actor=actor) | Q(actor__startswith=f"{actor} ("),
        kind=Execution.Kind.AUTO_HEAL,
        started_at__gte=now - timedelta(hours=1),
    ).exclude(trigger="schedule")
    limit = settings.SELFHEAL_MANUAL_RUNS_PER_HOUR
    if asked.count() >= limit:
        raise SelfHealError(
            "rate_limited",
            f"you asked for {limit} auto-heal runs in the last hour (the limit per operator); "
            "the schedule goes on running it",
            status=429,
            details={"limit": limit},
        )


def auto_heal_run(*, now: datetime | None = None) -> Execution:
    """The schedule's run: only auto-safe actions of auto-run playbooks, behind the breakers."""
    close_old_connections()
    return repair_run(trigger="schedule", actor="selfheal", auto=True, now=now)


def executions_list(*, limit: int = 50) -> list[Execution]:
    return list(Execution.objects.all()[:limit])


def repairs_recent(*, limit: int = 15) -> list[Execution]:
    """The newest repairs and auto-heal runs that could change something (dry runs are previews, not
    repairs), each with its judged ``outcome``."""
    rows = list(Execution.objects.exclude(kind=Execution.Kind.DIAGNOSE).exclude(dry_run=True)[:limit])
    for execution in rows:
        execution.outcome = execution_outcome(execution)
    return rows


def execution_get(execution_id: int) -> Execution:
    execution = Execution.objects.filter(pk=execution_id).first()
    if execution is None:
        raise SelfHealError("not_found", f"no execution {execution_id}", status=404)
    return execution


def last_execution() -> Execution | None:
    return Execution.objects.first()


def last_diagnosis() -> Execution | None:
    """The newest finished run that diagnosed: a diagnosis, or a repair's verification."""
    return (
        Execution.objects.exclude(status=Execution.Status.RUNNING)
        .exclude(dry_run=True)
        .exclude(report={})
        .first()
    )
