"""Guardrails: notice a run going round in circles and climb a ladder observe → steer → block → stop.

- ``repeated_failure``: the same failure fingerprint (tool + canonical arguments without volatile
  keys + error type + the error's first line with numbers, ids and paths normalised): observed on the
  first failure, a steer (a system note to the model) on the second, and on the third the call is
  blocked (the model is told why); asking for a blocked call again stops the run (``guardrail_blocked``).
- ``same_result``: the same call with the same result in a row: observe at 2, steer at 3, stop at 4.
- ``ping_pong``: two calls alternating A, B, A, B…: observe at 4, steer at 5, stop at 6 steps.
- ``repeated_text``: the same assistant text: steer at 2, stop at 3.
- ``no_new_info``: steps whose tool results were all seen before: observe, steer, then stop at K.
- ``no_tool_calls``: in a run whose task needs tools (its mode is one of ``CHAT_TOOL_MODES``), model
  answers without a tool call before the run has called any tool: the model is talking to itself.
  With N = ``CHAT_NO_TOOL_TURNS``: observe below N-2, steer at N-2, block at N-1 (the next call must
  call a tool: ``tool_choice: required``), stop at N.
- ``model_error``: the same error from the model provider (fingerprint: error code + first line,
  normalised as above), counted per fingerprint in the retries budget: each retry blocks the model
  that failed for the rest of the run (routing falls back to the policy's next model), and one
  failure more than ``max_retries`` stops the run (``model_error``).

The state lives in the run's ``guardrails`` JSON, so a run resumed by another process keeps it.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field

OBSERVE, STEER, BLOCK, STOP = "observe", "steer", "block", "stop"
SEEN_KEEP = 500

_NORMALISE = [
    (re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.-]+){2,}[/\\]?"), "<path>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I), "<id>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def canonical_arguments(arguments: dict, volatile: tuple[str, ...] = ()) -> str:
    """The arguments as one stable string: sorted keys, volatile keys left out."""
    kept = {k: v for k, v in (arguments or {}).items() if k not in volatile}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def call_fingerprint(tool: str, arguments: dict, volatile: tuple[str, ...] = ()) -> str:
    return _digest(tool, canonical_arguments(arguments, volatile))


def error_first_line(message: str) -> str:
    """The error's first line with numbers, ids and paths replaced, so 'task 41' and 'task 42' match."""
    line = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    for pattern, replacement in _NORMALISE:
        line = pattern.sub(replacement, line)
    return line[:300]


def failure_fingerprint(call_fp: str, error_type: str, message: str) -> str:
    return _digest(call_fp, error_type, error_first_line(message))


def content_hash(content: str) -> str:
    return _digest(content)


@dataclass
class Finding:
    rule: str
    action: str
    fingerprint: str
    streak: int
    message: str
    stop_reason: str = ""  # set when action is "stop"
    note: bool = True  # a steer or block is told to the model (a provider's error is not its doing)

    def event(self) -> dict:
        return {
            "rule": self.rule,
            "action": self.action,
            "fingerprint": self.fingerprint,
            "streak": self.streak,
            "message": self.message,
        }


@dataclass
class Guard:
    """One run's guardrail state (``state`` is the run's ``guardrails`` JSON, changed in place)."""

    state: dict = field(default_factory=dict)
    max_retries: int = 2  # per failure fingerprint: the next failure blocks the call
    no_new_steps: int = 6
    no_tool_turns: int = 4
    needs_tools: bool = False

    def __post_init__(self) -> None:
        for key, empty in (
            ("failures", {}),
            ("blocked", {}),
            ("calls", []),
            ("texts", {}),
            ("seen", []),
            ("rules", {}),
            ("last", ["", "", 0]),
            ("no_new", 0),
            ("no_tools", 0),
            ("avoid_models", []),
        ):
            self.state.setdefault(key, empty)
        self.state["needs_tools"] = self.needs_tools

    @property
    def failures(self) -> dict[str, int]:
        return self.state["failures"]

    def _note(self, rule: str, action: str, fp: str, streak: int, message: str, stop: str = "") -> Finding:
        self.state["rules"][rule] = {"streak": streak, "action": action, "fingerprint": fp}
        return Finding(rule, action, fp, streak, message, stop)

    def is_blocked(self, call_fp: str) -> bool:
        return call_fp in self.state["blocked"]

    def blocked_attempt(self, call_fp: str, label: str) -> Finding:
        """The model asked again for a call that was blocked: the run stops."""
        failure = self.state["blocked"][call_fp]
        streak = self.failures.get(failure, 0) + 1
        return self._note(
            "repeated_failure",
            STOP,
            failure,
            streak,
            f"{label} was blocked after failing {streak - 1} times, and the model asked for it again.",
            "guardrail_blocked",
        )

    def tool_result(
        self, call_fp: str, label: str, *, failure_fp: str, error: str, result_hash: str
    ) -> list[Finding]:
        """Findings after one executed call (``failure_fp`` empty when it succeeded)."""
        found: list[Finding] = []
        if failure_fp:
            n = self.failures[failure_fp] = self.failures.get(failure_fp, 0) + 1
            limit = self.max_retries + 1
            if n >= limit:
                self.state["blocked"][call_fp] = failure_fp
                found.append(
                    self._note(
                        "repeated_failure",
                        BLOCK,
                        failure_fp,
                        n,
                        f"{label} failed {n} times with the same error ({error_first_line(error)}); "
                        "it is blocked: do not call it again with these arguments.",
                    )
                )
            elif n == limit - 1 and n > 1:
                found.append(
                    self._note(
                        "repeated_failure",
                        STEER,
                        failure_fp,
                        n,
                        f"{label} failed {n} times with the same error ({error_first_line(error)}). "
                        "Change the arguments or try another way.",
                    )
                )
            else:
                found.append(self._note("repeated_failure", OBSERVE, failure_fp, n, f"{label} failed."))
            self.state["last"] = ["", "", 0]
        else:
            last_call, last_result, streak = self.state["last"]
            streak = streak + 1 if (last_call, last_result) == (call_fp, result_hash) else 1
            self.state["last"] = [call_fp, result_hash, streak]
            step = {2: OBSERVE, 3: STEER}.get(streak, STOP if streak >= 4 else "")
            if step:
                text = {
                    OBSERVE: f"{label} returned the same result twice in a row.",
                    STEER: f"{label} returned the same result {streak} times in a row; it will not change. "
                    "Use what you have, or try something else.",
                    STOP: f"{label} returned the same result {streak} times in a row.",
                }[step]
                found.append(
                    self._note(
                        "same_result", step, call_fp, streak, text, "stuck_loop" if step == STOP else ""
                    )
                )
        found += self._ping_pong(call_fp, label)
        return found

    def _ping_pong(self, call_fp: str, label: str) -> list[Finding]:
        calls = (self.state["calls"] + [call_fp])[-6:]
        self.state["calls"] = calls
        streak = 1
        for i in range(len(calls) - 1, 0, -1):
            if calls[i] != calls[i - 1] and (i < 2 or calls[i] == calls[i - 2]):
                streak += 1
            else:
                break
        step = {4: OBSERVE, 5: STEER}.get(streak, STOP if streak >= 6 else "")
        if not step:
            return []
        pair = _digest(*sorted(set(calls[-2:])))
        text = {
            OBSERVE: "The last 4 calls alternate between the same two calls.",
            STEER: "The last 5 calls alternate between the same two calls: step back and change approach.",
            STOP: "The last 6 calls alternated between the same two calls.",
        }[step]
        return [self._note("ping_pong", step, pair, streak, text, "stuck_loop" if step == STOP else "")]

    def step_end(self, result_hashes: list[str]) -> list[Finding]:
        """After a step's tool results: did any of them say something new?"""
        seen = self.state["seen"]
        new = [h for h in result_hashes if h not in seen]
        self.state["seen"] = (seen + new)[-SEEN_KEEP:]
        if new:
            self.state["no_new"] = 0
            return []
        streak = self.state["no_new"] = self.state["no_new"] + 1
        k = self.no_new_steps
        step = STOP if streak >= k else STEER if streak == k - 1 else OBSERVE if streak == k - 2 else ""
        if not step:
            return []
        text = {
            OBSERVE: f"{streak} steps in a row brought no new tool results.",
            STEER: f"{streak} steps in a row brought no new tool results: answer with what you know.",
            STOP: f"{streak} steps in a row brought no new tool results.",
        }[step]
        return [self._note("no_new_info", step, "", streak, text, "stuck_loop" if step == STOP else "")]

    def assistant_text(self, text: str) -> list[Finding]:
        """After a model answer with text: the same text again and again means a loop."""
        normal = " ".join((text or "").split()).lower()
        if not normal:
            return []
        key = content_hash(normal)
        n = self.state["texts"][key] = self.state["texts"].get(key, 0) + 1
        if n == 2:
            return [
                self._note(
                    "repeated_text",
                    STEER,
                    key,
                    n,
                    "You wrote the same text twice; say something new or finish.",
                )
            ]
        if n >= 3:
            return [
                self._note(
                    "repeated_text", STOP, key, n, f"The model wrote the same text {n} times.", "stuck_loop"
                )
            ]
        return []

    def model_answer(self, *, tool_calls: int, tools_used: int) -> list[Finding]:
        """After a model answer: in a run that needs tools, text without a tool call (before any tool
        ran) is the model talking to itself. ``force_tools`` then says whether the next call must
        call a tool."""
        if not self.needs_tools or tool_calls or tools_used:
            self.state["no_tools"] = 0
            return []
        streak = self.state["no_tools"] = self.state["no_tools"] + 1
        n = self.no_tool_turns
        step = STOP if streak >= n else BLOCK if streak == n - 1 else STEER if streak == n - 2 else OBSERVE
        text = {
            OBSERVE: f"The model answered {streak} time(s) without calling a tool; this task needs tools.",
            STEER: f"You answered {streak} times without calling a tool, and this task needs them: "
            "call the tool that gives the facts, or say which one is missing.",
            BLOCK: f"You answered {streak} times without calling a tool: the next answer must call one.",
            STOP: f"The model answered {streak} times without calling a tool, and this task needs tools.",
        }[step]
        return [self._note("no_tool_calls", step, "", streak, text, "stuck_loop" if step == STOP else "")]

    @property
    def force_tools(self) -> bool:
        return self.needs_tools and self.state["no_tools"] >= self.no_tool_turns - 1

    @property
    def avoid_models(self) -> list[str]:
        return self.state["avoid_models"]

    def model_failure(self, *, code: str, message: str, model: str) -> Finding:
        """A failed model call: the same provider error more than ``max_retries`` times stops the run;
        before that the model that failed is avoided for the rest of the run and the call retried."""
        fp = _digest("model_error", str(code), error_first_line(message))
        n = self.failures[fp] = self.failures.get(fp, 0) + 1
        first = error_first_line(message)
        if n > self.max_retries:
            finding = self._note(
                "model_error",
                STOP,
                fp,
                n,
                f"the model provider returned the same error {n} times ({first}).",
                "model_error",
            )
        else:
            if model and model not in self.avoid_models:
                self.avoid_models.append(model)
            finding = self._note(
                "model_error",
                BLOCK,
                fp,
                n,
                f"{model or 'the model'} failed ({first}); it is avoided for the rest of the run "
                f"and the call is retried ({n} of {self.max_retries} retries for this error).",
            )
        finding.note = False
        return finding
