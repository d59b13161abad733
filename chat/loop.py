"""The agent loop: a queued run from its claim to its stop (or to a wait for the operator's approval).

It asks routing for the mode's model with the conversation and the tools, streams the answer (tokens
reach the event log coalesced), runs the tool calls (a message's parallel calls at once, each in its
own thread), feeds results and errors back, and loops until the model finishes or a limit or a
guardrail stops it. A watcher thread beside it keeps the run's heartbeat, and notices Stop, the wall
time limit and a lost lease within ``CHAT_CANCEL_POLL_SECONDS``: it cancels the model's stream under
the loop, and the loop stops waiting for a tool.

Everything the page needs is in the database as it happens (messages, tool executions, budget,
counters) and in the run's events, so a reload shows the same run.
"""

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from chat import runs
from chat.control import LOST, Control, Stop, Tokens, Wait, watch
from chat.guardrails import (
    BLOCK,
    STEER,
    STOP,
    Finding,
    Guard,
    call_fingerprint,
    content_hash,
    failure_fingerprint,
)
from chat.models import (
    ChatMessage,
    ChatRun,
    Phase,
    Role,
    RunStatus,
    SessionStatus,
    StopReason,
    ToolExecution,
    ToolStatus,
)
from chat.prompt import prompt_build, prompt_fit
from chat.tools_registry import (
    ToolArgumentError,
    arguments_parse,
    call_refusal,
    calls_checked,
    tool_get,
    tool_schemas,
)
from juggernaut.auth import session_principal
from juggernaut.engine.services.common import plural
from juggernaut.errors import HQError
from juggernaut.events import publish
from routing.models import Usage
from routing.services import RoutingError, completion_run, policy_get

log = logging.getLogger(__name__)


def run_execute(run_id: int, *, client=None) -> str:
    """Execute a queued run until it stops or waits for approval; returns what became of it."""
    lease = uuid.uuid4().hex
    now = timezone.now()
    run = ChatRun.objects.select_related("session", "session__owner", "budget").filter(pk=run_id).first()
    if run is None:
        return "missing"
    first = run.started_at is None
    with transaction.atomic():
        claimed = ChatRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, lease_owner=lease, heartbeat_at=now, started_at=run.started_at or now
        )
        if claimed != 1:
            return "not_queued"
        run.refresh_from_db(fields=["status", "lease_owner", "heartbeat_at", "started_at", "phase"])
        runs.session_status(run.session_id, SessionStatus.RUNNING)
        if first:
            runs.emit(
                run,
                "run_started",
                {"session_id": run.session_id, "mode": run.mode, "resumed_from": run.resumed_from_id},
            )
            publish(
                runs.TOPIC,
                "run_started",
                {"run_id": run.pk, "session_id": run.session_id, "message": f"chat run {run.pk} started"},
            )
    budget = run.budget
    control = Control(run.pk, lease, float(budget.max_wall_seconds), budget.wall_seconds_used)
    finished = threading.Event()
    watcher = threading.Thread(target=watch, args=(control, finished), name=f"chat-run-{run.pk}", daemon=True)
    watcher.start()
    try:
        outcome = Loop(run, control, client).execute()
    except Exception as exc:
        log.exception("chat run %s failed", run_id)
        outcome = Stop(
            StopReason.INTERRUPTED,
            f"The run failed on an unexpected error ({exc.__class__.__name__}).",
            "Resume the run; if it fails again, the jobs log has the error.",
        )
    finally:
        finished.set()
        watcher.join()
        budget.wall_seconds_used = control.wall()
        budget.save(update_fields=["wall_seconds_used", "updated_at"])
    if control.reason == LOST:
        return LOST
    if control.reason:  # Stop or the time limit came while the loop was finishing a step
        outcome = control.stop()
    if isinstance(outcome, Wait):
        return _wait_for_approval(run, lease, outcome.executions)
    runs.run_close(run.pk, reason=outcome.reason, detail=outcome.detail, action=outcome.action, lease=lease)
    return RunStatus.STOPPED


def _wait_for_approval(run: ChatRun, lease: str, executions: list[ToolExecution]) -> str:
    """Give the run back until the operator decides: no process waits for a human."""
    with transaction.atomic():
        moved = ChatRun.objects.filter(
            pk=run.pk, lease_owner=lease, status=RunStatus.RUNNING, cancel_requested_at__isnull=True
        ).update(status=RunStatus.WAITING_APPROVAL, phase=Phase.WAITING_APPROVAL, lease_owner="")
        if moved != 1:
            by = ChatRun.objects.filter(pk=run.pk).values_list("cancel_requested_by", flat=True).first()
            closed = runs.run_close(
                run.pk, reason=StopReason.CANCELLED, detail=f"Stopped by {by or 'an operator'}.", lease=lease
            )
            return RunStatus.STOPPED if closed else LOST
        runs.session_status(run.session_id, SessionStatus.WAITING_APPROVAL)
        approvals = [
            {"tool_call_id": e.tool_call_id, "name": e.tool, "args": e.arguments} for e in executions
        ]
        runs.emit(
            run,
            "status",
            {"phase": Phase.WAITING_APPROVAL, "status": RunStatus.WAITING_APPROVAL, "approvals": approvals},
        )
        publish(
            runs.TOPIC,
            "run_waiting",
            {
                "run_id": run.pk,
                "session_id": run.session_id,
                "message": f"chat run {run.pk} waits for approval",
            },
        )
    return RunStatus.WAITING_APPROVAL


class Loop:
    """One execution of a run (a run waiting for approval is executed again after the decision)."""

    def __init__(self, run: ChatRun, control: Control, client=None) -> None:
        self.run, self.control, self.client = run, control, client
        self.session = run.session
        self.budget = run.budget
        self.guard = Guard(
            run.guardrails,
            max_retries=self.budget.max_retries,
            no_new_steps=settings.CHAT_NO_NEW_INFO_STEPS,
            no_tool_turns=settings.CHAT_NO_TOOL_TURNS,
            needs_tools=run.mode in settings.CHAT_TOOL_MODES,
        )
        self.meters = runs.Thresholds(self.budget.as_dict(), runs.LOOP_METERS)
        self.schemas = tool_schemas()
        self.left_out = 0

    def execute(self) -> Stop | Wait:
        while True:
            if self.control.reason:
                return self.control.stop()
            pending = self._pending()
            outcome = self._tools(*pending) if pending else self._model_call()
            if outcome is not None:
                return self.control.stop() if self.control.reason and isinstance(outcome, Stop) else outcome

    # --- the model ----------------------------------------------------------------------------

    def _keep_cut_off(self, tokens: Tokens) -> None:
        """An answer stopped mid-stream stays in the conversation as far as it was shown, so the page
        reads the same after a reload (and the model sees next time what the operator saw)."""
        text = "".join(tokens.shown)
        if text.strip():
            ChatMessage.objects.create(
                session=self.session,
                run=self.run,
                role=Role.ASSISTANT,
                content=f"{text}\n\n*(cut off: the run was stopped)*",
            )

    def _model_call(self) -> Stop | None:
        run, budget = self.run, self.budget
        owner = type(self.session.owner).objects.filter(pk=self.session.owner_id).first()
        if session_principal(owner) is None:  # demoted or deactivated: no more paid calls on their behalf
            return Stop(
                StopReason.CANCELLED,
                "The session's owner is no longer an active operator, so the run makes no more model calls.",
            )
        if run.iterations >= budget.max_iterations:
            return Stop(
                StopReason.MAX_ITERATIONS,
                f"The run made {plural(run.iterations, 'model call')}, the limit of this run (mode {run.mode}).",
            )
        if budget.steps_used >= budget.max_steps:
            return Stop(
                StopReason.BUDGET_EXCEEDED,
                f"The run used all {budget.max_steps} of its steps (model and tool calls).",
            )
        attempt = 0
        while True:
            messages, left_out = self._prompt()
            runs.status_emit(run, Phase.ROUTING, **({"left_out": left_out} if left_out else {}))
            tokens = Tokens(run, run.iterations + 1)
            try:
                usage, completion = completion_run(
                    run.mode,
                    messages,
                    tools=self.schemas or None,
                    session=self.session.routing_key,
                    run=str(run.pk),
                    client=self.client,
                    on_delta=tokens.add,
                    on_phase=self._on_phase,
                    tool_choice="required" if self.schemas and self.guard.force_tools else None,
                    avoid_models=self.guard.avoid_models,
                    cancel=self.control.stopped,
                )
            except RoutingError as exc:
                tokens.flush()
                self.control.set_stream(None)
                details = exc.details or {}
                record = (
                    Usage.objects.filter(pk=details["usage_id"]).first() if details.get("usage_id") else None
                )
                retry = exc.code == "model_error" and details.get("retryable") and not self.control.reason
                if retry:
                    finding = self.guard.model_failure(
                        code=str(details.get("code") or ""),
                        message=exc.message,
                        model=record.model_requested if record else "",
                    )
                    self.budget.retries_used = dict(self.guard.failures)
                if record is not None:  # what routing charged for the failed call is spent like an answer
                    self._spend(steps=0, cost=record.cost_usd)
                if self.control.reason:
                    self._keep_cut_off(tokens)
                    return self.control.stop()
                if not retry:
                    return self._routing_stop(exc)
                if finding.action != STOP and attempt >= settings.CHAT_MODEL_RETRIES:
                    finding.action, finding.stop_reason = STOP, StopReason.MODEL_ERROR
                    self.guard.state["rules"]["model_error"]["action"] = STOP
                    finding.message = f"the call failed {attempt + 1} times in a row ({exc.message})."
                if self._findings([finding]):
                    return Stop(
                        StopReason.MODEL_ERROR,
                        f"The model call failed and was not retried again: "
                        f"{finding.message[0].upper()}{finding.message[1:]} Last error: {exc.message}",
                        f"Check the provider's state on the Routing page, or give the {run.mode} policy "
                        "another fallback model; then send the message again.",
                    )
                attempt += 1
                run.model_retries += 1
                run.save(update_fields=["model_retries"])
                runs.status_emit(
                    run,
                    Phase.RETRYING,
                    attempt=attempt,
                    error=exc.message,
                    discard_partial=tokens.sent > 0,
                    avoid_models=list(self.guard.avoid_models),
                )
                if self.control.stopped.wait(min(float(details.get("retry_after") or 0.5), 5.0)):
                    return self.control.stop()
                continue
            tokens.flush()
            self.control.set_stream(None)
            break
        with transaction.atomic():
            ChatMessage.objects.create(
                session=self.session,
                run=run,
                role=Role.ASSISTANT,
                content=completion.content,
                tool_calls=calls_checked([c.as_dict() for c in completion.tool_calls]),
            )
            run.iterations += 1
            run.model = completion.model or usage.model_requested
            run.save(update_fields=["iterations", "model"])
            self._spend(steps=1, cost=usage.cost_usd)
        findings = self.guard.assistant_text(completion.content)
        talking = self.guard.model_answer(tool_calls=len(completion.tool_calls), tools_used=run.tool_calls)
        stop = self._findings(findings + talking)
        if stop:
            return stop
        if completion.finish_reason == "length":
            return Stop(
                StopReason.LENGTH, f"The answer was cut off at the output limit ({usage.max_tokens} tokens)."
            )
        if completion.finish_reason == "content_filter":
            return Stop(StopReason.CONTENT_FILTER, "The provider's content filter stopped the answer.")
        if talking:  # the task needs tools and none was called: the model is asked again
            return None
        if not completion.tool_calls:
            return Stop(
                StopReason.COMPLETED,
                f"The model answered after {plural(run.iterations, 'model call')} and "
                f"{plural(run.tool_calls, 'tool call')}.",
            )
        return None

    def _prompt(self) -> tuple[list[dict], int]:
        """The prompt, fitted to the mode's context; the first time (or more) is left out, a note in
        the conversation says so."""
        policy = policy_get(self.run.mode)
        room = policy.max_context_tokens - min(settings.ROUTING_MIN_USEFUL_TOKENS, policy.max_output_tokens)
        messages, left_out = prompt_fit(prompt_build(self.session.pk), self.schemas, room=room)
        if left_out > self.left_out:
            self.left_out = left_out
            ChatMessage.objects.create(
                session=self.session,
                run=self.run,
                role=Role.NOTE,
                content=(
                    f"The {left_out} oldest messages are left out of the prompt to fit the {self.run.mode} mode's "
                    f"context of {policy.max_context_tokens:,} tokens."
                ),
            )
        return messages, left_out

    def _on_phase(self, name: str, value) -> None:
        if name == "selected":
            runs.status_emit(self.run, Phase.CALLING_MODEL, model=value.model)
        elif name == "stream":
            self.control.set_stream(value)
            runs.status_emit(self.run, Phase.WAITING_FIRST_TOKEN)

    def _routing_stop(self, exc: RoutingError) -> Stop:
        if exc.code == "budget_exceeded":
            # Name the limit that refused (routing's daily budget is not the session's limit).
            which = (exc.details or {}).get("budget") or "budget"
            return Stop(
                StopReason.BUDGET_EXCEEDED,
                exc.message,
                f"Raise the {which} on the Routing page, or wait for its period to end; then send a message "
                "to go on.",
            )
        actions = {
            "not_configured": "Set OPENROUTER_API_KEY in the environment and restart the HQ.",
            "no_model_fits": f"Edit the {self.run.mode} policy on the Routing page, or use another mode.",
            "unknown_mode": "Pick a mode that has a routing policy.",
        }
        return Stop(StopReason.MODEL_ERROR, exc.message, actions.get(exc.code, ""))

    def _spend(self, *, steps: int, cost=0) -> None:
        budget = self.budget
        budget.steps_used += steps
        budget.cost_usd_used += cost
        budget.wall_seconds_used = self.control.wall()
        budget.save(
            update_fields=["steps_used", "cost_usd_used", "wall_seconds_used", "retries_used", "updated_at"]
        )
        runs.session_spent(self.session.pk, cost=cost, steps=steps)
        runs.budget_emit(self.run, budget, self.meters.crossed(budget.as_dict()))

    # --- tools --------------------------------------------------------------------------------

    def _pending(self) -> tuple[ChatMessage, list[dict]] | None:
        """The tool calls of the conversation's last model answer that have no result yet."""
        last = (
            ChatMessage.objects.filter(session=self.session)
            .exclude(role__in=[Role.TOOL, Role.NOTE])
            .order_by("-id")
            .first()
        )
        if last is None or last.role != Role.ASSISTANT or not last.tool_calls:
            return None
        answered = set(
            ChatMessage.objects.filter(session=self.session, role=Role.TOOL, id__gt=last.pk).values_list(
                "tool_call_id", flat=True
            )
        )
        calls = [c for c in last.tool_calls if c.get("id") not in answered]
        return (last, calls) if calls else None

    def _execution(self, call: dict) -> ToolExecution:
        """The call's execution row, created (with its ``tool_start``) the first time the call is seen."""
        found = ToolExecution.objects.filter(run=self.run, tool_call_id=call["id"]).first()
        if found is not None:
            return found
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        refused = call_refusal(call)
        arguments, problem = ({}, refused) if refused else arguments_parse(function.get("arguments") or "{}")
        tool = tool_get(name)
        call_fp = call_fingerprint(
            name, arguments or {"_raw": function.get("arguments")}, tool.spec.volatile if tool else ()
        )
        execution = ToolExecution(
            run=self.run,
            tool_call_id=call["id"],
            tool=name[:100],
            arguments=arguments,
            safe=tool.safe if tool else True,
            call_fingerprint=call_fp,
            iteration=self.run.iterations,
        )
        if tool is None or problem:
            execution.status = ToolStatus.ERROR
            execution.error_type = "bad_call_id" if refused else "bad_arguments" if tool else "unknown_tool"
            execution.error = problem if refused or tool else f"there is no tool named {name!r}"
        elif self.guard.is_blocked(call_fp):
            execution.status = ToolStatus.BLOCKED
        elif (limit := tool.spec.per_run) and ToolExecution.objects.went().filter(
            run=self.run, tool=name
        ).count() >= limit:
            execution.status, execution.error_type = ToolStatus.ERROR, "rate_limited"
            execution.error = (
                f"{name} may run at most {tool.spec.per_run} time(s) per run; use the result you have"
            )
        elif not tool.safe:
            execution.status = ToolStatus.WAITING_APPROVAL
        else:
            execution.status = ToolStatus.APPROVED
        with transaction.atomic():
            execution.save()
            runs.emit(
                self.run,
                "tool_start",
                {
                    "tool_call_id": execution.tool_call_id,
                    "name": execution.tool,
                    "args": arguments,
                    "needs_approval": not execution.safe,
                },
            )
        return execution

    def _tools(self, message: ChatMessage, calls: list[dict]) -> Stop | Wait | None:
        executions = [self._execution(c) for c in calls]
        for e in executions:
            if e.status == ToolStatus.BLOCKED:
                finding = self.guard.blocked_attempt(e.call_fingerprint, self._label(e))
                e.error_type, e.error = "blocked", f"Blocked by a guardrail: {finding.message}"
                self._answer(e, ok=False, content=json.dumps({"error": e.error}), duration=None)
                return self._findings([finding])
        waiting = [e for e in executions if e.status == ToolStatus.WAITING_APPROVAL]
        if waiting:
            return Wait(waiting)
        to_run = [e for e in executions if e.status == ToolStatus.APPROVED]
        if self.budget.steps_used + len(to_run) > self.budget.max_steps:
            return Stop(
                StopReason.BUDGET_EXCEEDED,
                f"The next {plural(len(to_run), 'tool call')} would pass the run's limit "
                f"of {self.budget.max_steps} steps.",
            )
        results = self._run_all(to_run) if to_run else {}
        if self.control.reason:
            return self.control.stop()
        findings: list[Finding] = []
        hashes: list[str] = []
        for e in executions:
            if e.pk in results:
                ok, value, error_type, error, duration = results[e.pk]
                e.result, e.error_type, e.error = (value, "", "") if ok else (None, error_type, error)
            elif e.status == ToolStatus.DENIED:
                ok, duration, e.error_type = False, None, "denied"
                e.error = f"The operator ({e.decided_by or 'an operator'}) denied this call."
            else:  # unknown tool or bad arguments: the model reads why
                ok, duration = False, None
            content = (
                json.dumps(e.result, default=str)
                if ok
                else json.dumps({"error": e.error, "type": e.error_type})
            )
            self._answer(e, ok=ok, content=content, duration=duration)
            hashes.append(content_hash(content))
            if e.status != ToolStatus.DENIED:
                e.failure_fingerprint = (
                    "" if ok else failure_fingerprint(e.call_fingerprint, e.error_type, e.error)
                )
                if e.failure_fingerprint:
                    ToolExecution.objects.filter(pk=e.pk).update(failure_fingerprint=e.failure_fingerprint)
                findings += self.guard.tool_result(
                    e.call_fingerprint,
                    self._label(e),
                    failure_fp=e.failure_fingerprint,
                    error=e.error,
                    result_hash=hashes[-1],
                )
        self.budget.retries_used = dict(self.guard.failures)
        self._spend(steps=len(to_run))
        if not any(f.action == STOP for f in findings):
            findings += self.guard.step_end(hashes)
        return self._findings(findings)

    def _label(self, e: ToolExecution) -> str:
        args = json.dumps(e.arguments, sort_keys=True, default=str)
        return f"{e.tool}({args[:120]})"

    def _run_all(self, executions: list[ToolExecution]) -> dict[int, tuple]:
        """Run the calls at once, one thread each; wait for them unless the run is stopped."""
        now = timezone.now()
        with transaction.atomic():
            ToolExecution.objects.filter(pk__in=[e.pk for e in executions]).update(
                status=ToolStatus.RUNNING, started_at=now
            )
            for e in executions:
                e.status, e.started_at = ToolStatus.RUNNING, now
            runs.status_emit(self.run, Phase.TOOL_RUNNING, tool_call_ids=[e.tool_call_id for e in executions])
        owner = self.session.owner
        pool = ThreadPoolExecutor(
            max_workers=min(len(executions), 8), thread_name_prefix=f"chat-tool-{self.run.pk}"
        )
        futures = {pool.submit(_call_tool, e.tool, e.arguments, owner): e for e in executions}
        try:
            pending = set(futures)
            while pending and not self.control.reason:
                _, pending = futures_wait(pending, timeout=settings.CHAT_CANCEL_POLL_SECONDS)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a stopped run does not wait for its tools
        return {futures[f].pk: f.result() for f in futures if f.done() and not f.cancelled()}

    def _answer(self, e: ToolExecution, *, ok: bool, content: str, duration: int | None) -> None:
        """Record a call's outcome: its row, the tool message the model reads, ``tool_result``."""
        now = timezone.now()
        if e.status not in (ToolStatus.DENIED, ToolStatus.BLOCKED):
            e.status = ToolStatus.OK if ok else ToolStatus.ERROR
        e.ended_at, e.duration_ms = now, duration
        with transaction.atomic():
            e.save(update_fields=["status", "result", "error", "error_type", "ended_at", "duration_ms"])
            ChatMessage.objects.create(
                session=self.session,
                run=self.run,
                role=Role.TOOL,
                tool_call_id=e.tool_call_id,
                content=content[:100_000],
            )
            if duration is not None:
                self.run.tool_calls += 1
            # An operator's denial is a decision, not a failure of the tool.
            self.run.tool_errors += 0 if ok or e.status == ToolStatus.DENIED else 1
            self.run.save(update_fields=["tool_calls", "tool_errors"])
            outcome = {"output": e.result} if ok else {"error": e.error}
            runs.emit(
                self.run,
                "tool_result",
                {
                    "tool_call_id": e.tool_call_id,
                    "name": e.tool,
                    "ok": ok,
                    **outcome,
                    **({"denied": True} if e.status == ToolStatus.DENIED else {}),
                    "duration_ms": duration,
                },
            )

    # --- guardrails ---------------------------------------------------------------------------

    def _findings(self, findings: list[Finding]) -> Stop | None:
        """Publish each finding; a steer or block becomes a note the model reads; a stop ends the run."""
        stop = None
        with transaction.atomic():
            for f in findings:
                runs.emit(self.run, "guardrails", f.event())
                if f.action in (STEER, BLOCK) and f.note:
                    ChatMessage.objects.create(
                        session=self.session,
                        run=self.run,
                        role=Role.NOTE,
                        content=f"Guardrail ({f.rule.replace('_', ' ')}): {f.message}",
                    )
                self.run.guardrail_steers += f.action == STEER
                self.run.guardrail_blocks += f.action == BLOCK
                if f.action == STOP and stop is None:
                    stop = Stop(f.stop_reason, f"Guardrail {f.rule.replace('_', ' ')}: {f.message}")
            self.run.guardrails = self.guard.state
            self.run.save(update_fields=["guardrails", "guardrail_steers", "guardrail_blocks"])
            self.budget.save(update_fields=["retries_used", "updated_at"])
        return stop


def _call_tool(name: str, arguments: dict, owner) -> tuple:
    """``(ok, value, error_type, error, duration_ms)`` of one call, on its own thread."""
    started = time.monotonic()
    try:
        value = tool_get(name).call(arguments, user=owner)
        json.dumps(value, default=str)
        return True, value, "", "", int((time.monotonic() - started) * 1000)
    except ToolArgumentError as exc:
        return False, None, "bad_arguments", str(exc), int((time.monotonic() - started) * 1000)
    except HQError as exc:
        return False, None, exc.code, exc.message, int((time.monotonic() - started) * 1000)
    except Exception as exc:  # a tool's failure is the model's to read, never the loop's crash
        return (
            False,
            None,
            exc.__class__.__name__,
            str(exc)[:2000] or exc.__class__.__name__,
            int((time.monotonic() - started) * 1000),
        )
    finally:
        connection.close()
