"""A chat run's events as AG-UI events (https://docs.ag-ui.com, protocol 1.0).

The run's state (``STATE_SNAPSHOT`` first, then ``STATE_DELTA`` JSON Patches on paths the snapshot
created) carries the HQ's own ``status``, ``budget``, ``guardrails`` (the latest finding per rule) and
``stop``. A run that waits for approvals ends its AG-UI run with the interrupt outcome, one interrupt
per call; the next request answers them in ``resume`` and the same chat run goes on.
"""

import copy
import json

from chat.protocols import is_pause, millis, without_run_id

# How a stop ends the AG-UI run: a finished run with an outcome, or RUN_ERROR (every limit, guardrail
# and failure: the work did not get done, and a client must not read it as success).
OUTCOMES = {"completed": "success", "cancelled": "cancelled"}
APPROVAL = "tool_approval"
APPROVAL_SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}},
    "required": ["approved"],
}


def pointer(key: str) -> str:
    """One JSON Pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def initial_state(run_id: int, *, status: dict | None = None, budget: dict | None = None) -> dict:
    """The snapshot every delta applies to: each path a delta names exists in it."""
    return {"run_id": run_id, "status": status, "budget": budget, "guardrails": {}, "stop": None}


class AguiTranslator:
    """Feeds on one chat run's envelopes (in ``seq`` order) and gives AG-UI events.

    ``thread_id`` and ``run_id`` are the AG-UI run's (the request's ``threadId`` and ``runId``); the
    chat run's own id is in the state. The first envelope, whatever it is, opens with ``RUN_STARTED``
    and the snapshot, so a run stopped before it started still has a well-formed stream.
    """

    def __init__(self, *, thread_id: str, run_id: str, state: dict) -> None:
        self.thread_id, self.run_id = thread_id, run_id
        self.state = state
        self.started = False
        self.ended = False
        self.message: str | None = None  # the open text message
        self.seq = 0  # of the envelope being translated: it names the messages it opens, uniquely
        self.parent: str | None = None  # the model call's assistant message: its text and tool calls

    def open(self, timestamp: int) -> list[dict]:
        """``RUN_STARTED`` and the snapshot (once): sent as the stream opens, before the run has said
        anything, so even a run stopped before it started opens like any other."""
        if self.started:
            return []
        self.started = True
        return [
            {"type": "RUN_STARTED", "threadId": self.thread_id, "runId": self.run_id, "timestamp": timestamp},
            {"type": "STATE_SNAPSHOT", "snapshot": copy.deepcopy(self.state), "timestamp": timestamp},
        ]

    def feed(self, envelope: dict) -> list[dict]:
        if self.ended:
            return []
        ts, self.seq = millis(envelope["ts"]), envelope["seq"]
        out = self._translate(envelope["type"], envelope["data"], envelope)
        for event in out:
            event["timestamp"] = ts
        return [*self.open(ts), *out]

    def _next_message(self) -> str:
        self.parent = f"chat-run-{self.state['run_id']}-message-{self.seq}"
        return self.parent

    def _close_text(self) -> list[dict]:
        if self.message is None:
            return []
        event = {"type": "TEXT_MESSAGE_END", "messageId": self.message}
        self.message = None
        return [event]

    def _delta(self, op: str, path: str, value) -> dict:
        return {"type": "STATE_DELTA", "delta": [{"op": op, "path": path, "value": value}]}

    def _translate(self, type: str, data: dict, envelope: dict) -> list[dict]:
        if type == "run_started":
            return []
        if type == "token":
            out = []
            if self.message is None:
                self.message = self.parent or self._next_message()
                out.append({"type": "TEXT_MESSAGE_START", "messageId": self.message, "role": "assistant"})
            out.append({"type": "TEXT_MESSAGE_CONTENT", "messageId": self.message, "delta": data["delta"]})
            return out
        if type == "tool_start":
            out = self._close_text()
            call = data["tool_call_id"]
            return [
                *out,
                {
                    "type": "TOOL_CALL_START",
                    "toolCallId": call,
                    "toolCallName": data["name"],
                    "parentMessageId": self.parent or self._next_message(),
                },
                {"type": "TOOL_CALL_ARGS", "toolCallId": call, "delta": json.dumps(data["args"])},
                {"type": "TOOL_CALL_END", "toolCallId": call},
            ]
        if type == "tool_result":
            content = json.dumps(data["output"]) if data["ok"] else str(data.get("error", ""))
            return [
                *self._close_text(),
                {
                    "type": "TOOL_CALL_RESULT",
                    "messageId": f"chat-run-{self.state['run_id']}-result-{data['tool_call_id']}",
                    "toolCallId": data["tool_call_id"],
                    "content": content,
                    "role": "tool",
                },
            ]
        if type == "status":
            out = []
            if data.get("phase") == "routing" or data.get("discard_partial"):
                # A new model call (or a retry that drops the text so far): a new assistant message.
                out += self._close_text()
                self._next_message()
            self.state["status"] = without_run_id(data)
            out.append(self._delta("replace", "/status", self.state["status"]))
            if is_pause(envelope):
                out += self._close_text()
                out.append(self._interrupt(data["approvals"]))
                self.ended = True
            return out
        if type == "budget":
            self.state["budget"] = without_run_id(data)
            return [self._delta("replace", "/budget", self.state["budget"])]
        if type == "guardrails":
            finding = without_run_id(data)
            self.state["guardrails"][data["rule"]] = finding
            return [self._delta("add", f"/guardrails/{pointer(data['rule'])}", finding)]
        if type == "stop_reason":
            self.ended = True
            stop = without_run_id(data)
            self.state["stop"] = stop
            out = [*self._close_text(), self._delta("replace", "/stop", stop)]
            outcome = OUTCOMES.get(data["reason"])
            if outcome is None:
                return [*out, {"type": "RUN_ERROR", "message": data["detail"], "code": data["reason"]}]
            finished = {"type": "RUN_FINISHED", "threadId": self.thread_id, "runId": self.run_id}
            finished["outcome"] = {"type": outcome}
            if outcome == "success":
                finished["result"] = stop
            return [*out, finished]
        return [{"type": "CUSTOM", "name": type, "value": without_run_id(data)}]

    def _interrupt(self, approvals: list[dict]) -> dict:
        interrupts = [
            {
                "id": a["tool_call_id"],
                "reason": APPROVAL,
                "message": f"Run the tool {a['name']} with {json.dumps(a['args'])}?",
                "toolCallId": a["tool_call_id"],
                "responseSchema": APPROVAL_SCHEMA,
                "metadata": {"tool": a["name"], "args": a["args"]},
            }
            for a in approvals
        ]
        return {
            "type": "RUN_FINISHED",
            "threadId": self.thread_id,
            "runId": self.run_id,
            "outcome": {"type": "interrupt", "interrupts": interrupts},
        }


def agui_events(envelopes: list[dict], *, thread_id: str, run_id: str, state: dict) -> list[dict]:
    """A whole stream's AG-UI events for these envelopes (what the endpoint sends, one at a time)."""
    translator = AguiTranslator(thread_id=thread_id, run_id=run_id, state=state)
    return [event for env in envelopes for event in translator.feed(env)]


def decisions_from_resume(resume: list[dict]) -> dict[str, bool]:
    """``RunAgentInput.resume`` as approvals: ``resolved`` with ``{"approved": bool}``, or
    ``cancelled`` (a denial). Raises ``ValueError`` naming what does not fit."""
    decisions: dict[str, bool] = {}
    for entry in resume:
        call, status, payload = entry["interruptId"], entry["status"], entry.get("payload")
        if status == "cancelled":
            decisions[call] = False
        elif isinstance(payload, dict) and isinstance(payload.get("approved"), bool):
            decisions[call] = payload["approved"]
        else:
            raise ValueError(f'resume entry {call!r} is resolved but its payload is not {{"approved": bool}}')
    return decisions
