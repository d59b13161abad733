"""The prompt: the system prompt and the session's conversation, fitted to the mode's context.

When the conversation outgrows the policy's context, the oldest whole turns are left out (a turn
starts at an operator's message) and the loop leaves a visible note saying so, instead of failing.
"""

from chat.models import ChatMessage, Role
from routing.services import prompt_token_bounds

SYSTEM_PROMPT = (
    "You are the brain of Juggernaut HQ, the operator's control plane for an autonomous agent system. "
    "Answer the operator briefly and precisely. Use the tools to look at the engine, its tasks and "
    "workers, errors and spend instead of guessing; tools that change something wait for the operator's "
    "approval. When a tool fails, read its error and change course instead of repeating the same call."
)
LEFT_OUT = "Earlier turns of this conversation are left out here to fit the model's context."


def prompt_build(session_id: int) -> list[dict]:
    """The conversation as the model reads it: the system prompt, then every message in order; a tool
    call that never got its result (its run stopped) is answered with a note saying so, as the API
    requires an answer for every call."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    open_calls: list[str] = []
    for m in ChatMessage.objects.filter(session_id=session_id).order_by("id"):
        if m.role != Role.TOOL and open_calls:
            messages += [
                {"role": "tool", "tool_call_id": c, "content": '{"error": "not run: the run stopped"}'}
                for c in open_calls
            ]
            open_calls = []
        if m.role == Role.TOOL and m.tool_call_id in open_calls:
            open_calls.remove(m.tool_call_id)
        messages.append(m.as_prompt())
        if m.role == Role.ASSISTANT:
            open_calls = [c["id"] for c in m.tool_calls or []]
    return messages


def prompt_fit(messages: list[dict], tools: list[dict] | None, *, room: int) -> tuple[list[dict], int]:
    """Leave out the oldest turns until the prompt's estimate fits in ``room`` tokens; returns the
    messages (with a system line saying turns are missing) and how many messages were left out.
    When even the newest turn alone does not fit, the prompt stays whole, and routing refuses it
    with ``no_model_fits`` and a sentence."""
    if prompt_token_bounds(messages, tools)[0] <= room:
        return messages, 0
    note = {"role": "system", "content": LEFT_OUT}
    starts = [i for i, m in enumerate(messages) if i > 0 and m["role"] == "user"]
    for cut in starts[1:]:
        kept = [messages[0], note, *messages[cut:]]
        if prompt_token_bounds(kept, tools)[0] <= room:
            return kept, cut - 1
    return messages, 0
