"""A chat run's events as the Vercel AI SDK's UI message stream (``ai`` 5 and later: the chunks of
``uiMessageChunkSchema``, sent as SSE ``data:`` lines ending with ``[DONE]``).

One chat run is one assistant UI message (``chat-run-<id>``): its text parts, its tool parts (input,
then output, error or denial; a call that needs approval gets ``tool-approval-request``), and data
parts that replace themselves by id: ``data-status``, ``data-budget``, ``data-guardrails`` (one per
rule) and ``data-stop``. A run that waits for approvals finishes its stream with ``tool-calls``; the
next request carries the answers (tool parts in ``approval-responded``) and the same message goes on.
"""

from chat.protocols import is_pause, without_run_id

HEADERS = {"x-vercel-ai-ui-message-stream": "v1", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = "[DONE]"

# The finish reason of every stop; the limits and guardrails are "other" (``data-stop`` says which),
# only a failure is an "error" (with an ``error`` chunk first), a Stop is an ``abort`` first.
FINISH_REASONS = {
    "completed": "stop",
    "length": "length",
    "content_filter": "content-filter",
    "max_iterations": "other",
    "budget_exceeded": "other",
    "time_limit": "other",
    "stuck_loop": "other",
    "guardrail_blocked": "other",
    "cancelled": "other",
    "model_error": "error",
    "interrupted": "error",
}
APPROVAL_FINISH = "tool-calls"


def message_id(run_id: int) -> str:
    return f"chat-run-{run_id}"


class UIStreamTranslator:
    """Feeds on one chat run's envelopes (in ``seq`` order) and gives UI message chunks; the first
    envelope, whatever it is, opens the message with ``start``."""

    def __init__(self, *, run_id: int) -> None:
        self.run_id = run_id
        self.started = False
        self.ended = False
        self.text: str | None = None  # the open text part
        self.denied: set[str] = set()  # calls the operator denied: their result is a denial

    def open(self) -> list[dict]:
        """The message's ``start`` (once): sent as the stream opens, before the run has said anything."""
        if self.started:
            return []
        self.started = True
        return [{"type": "start", "messageId": message_id(self.run_id)}]

    def feed(self, envelope: dict) -> list[dict]:
        if self.ended:
            return []
        return [*self.open(), *self._translate(envelope)]

    def _close_text(self) -> list[dict]:
        if self.text is None:
            return []
        chunk = {"type": "text-end", "id": self.text}
        self.text = None
        return [chunk]

    def _translate(self, envelope: dict) -> list[dict]:
        type, data = envelope["type"], envelope["data"]
        if type == "run_started":
            return []
        if type == "token":
            out = []
            if self.text is None:
                self.text = f"chat-run-{self.run_id}-text-{envelope['seq']}"
                out.append({"type": "text-start", "id": self.text})
            return [*out, {"type": "text-delta", "id": self.text, "delta": data["delta"]}]
        if type == "tool_start":
            return [
                *self._close_text(),
                {
                    "type": "tool-input-available",
                    "toolCallId": data["tool_call_id"],
                    "toolName": data["name"],
                    "input": data["args"],
                },
            ]
        if type == "tool_result":
            call = data["tool_call_id"]
            if data["ok"]:
                result = {"type": "tool-output-available", "toolCallId": call, "output": data["output"]}
            elif call in self.denied:
                result = {"type": "tool-output-denied", "toolCallId": call}
            else:
                result = {"type": "tool-output-error", "toolCallId": call, "errorText": str(data["error"])}
            return [*self._close_text(), result]
        if type == "status":
            out = []
            if data.get("phase") == "routing" or data.get("discard_partial"):
                out += self._close_text()  # a new model call, or a retry: a new text part
            decision = data.get("decision")
            if decision and not decision.get("approved"):
                self.denied.add(decision["tool_call_id"])
            out.append({"type": "data-status", "id": "status", "data": without_run_id(data)})
            if is_pause(envelope):
                self.ended = True
                out += self._close_text()
                out += [
                    {
                        "type": "tool-approval-request",
                        "approvalId": a["tool_call_id"],
                        "toolCallId": a["tool_call_id"],
                    }
                    for a in data["approvals"]
                ]
                out.append({"type": "finish", "finishReason": APPROVAL_FINISH})
            return out
        if type == "budget":
            return [{"type": "data-budget", "id": "budget", "data": without_run_id(data)}]
        if type == "guardrails":
            return [{"type": "data-guardrails", "id": data["rule"], "data": without_run_id(data)}]
        if type == "stop_reason":
            self.ended = True
            reason = data["reason"]
            out = [*self._close_text(), {"type": "data-stop", "id": "stop", "data": without_run_id(data)}]
            if reason == "cancelled":
                out.append({"type": "abort", "reason": data["detail"]})
            elif FINISH_REASONS.get(reason) == "error":
                out.append({"type": "error", "errorText": data["detail"]})
            return [*out, {"type": "finish", "finishReason": FINISH_REASONS.get(reason, "other")}]
        return [{"type": f"data-{type}", "data": without_run_id(data)}]


def ui_stream_chunks(envelopes: list[dict], *, run_id: int) -> list[dict]:
    """A whole stream's chunks for these envelopes (what the endpoint sends, one at a time)."""
    translator = UIStreamTranslator(run_id=run_id)
    return [chunk for env in envelopes for chunk in translator.feed(env)]


def decisions_of(message: dict) -> dict[str, bool]:
    """The approvals answered in an assistant UI message's tool parts (``approval-responded``):
    ``{tool_call_id: approved}``."""
    decisions = {}
    for part in _parts(message):
        approval = part.get("approval")
        if (
            part.get("state") == "approval-responded"
            and isinstance(approval, dict)
            and isinstance(approval.get("approved"), bool)
            and isinstance(part.get("toolCallId"), str)
        ):
            decisions[part["toolCallId"]] = approval["approved"]
    return decisions


def text_of(message: dict) -> str:
    """A UI message's text: its text parts, joined."""
    return "".join(str(p.get("text", "")) for p in _parts(message) if p.get("type") == "text")


def _parts(message: dict) -> list[dict]:
    parts = message.get("parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []
