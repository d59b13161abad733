"""A chat run's events in the stream protocols frontends already speak: AG-UI (``agui``) and the
Vercel AI SDK's UI message stream (``aisdk``).

Each module is one translation of the event contract (docs/architecture.md, ``/api/docs``): a
translator fed a run's envelopes in ``seq`` order gives the protocol's events, with no I/O, so the
endpoints that stream them and the docs that show them use the same code.
"""

from datetime import datetime

# A run's stream ends with its stop, or when it pauses for approvals (the run goes on in a later request).
WAITING_APPROVAL = "waiting_approval"


def millis(ts: str) -> int:
    """An envelope's ISO ``ts`` as integer milliseconds since the epoch."""
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


def is_pause(envelope: dict) -> bool:
    """A ``status`` event that gives the run back until someone approves or denies its calls."""
    data = envelope["data"]
    return envelope["type"] == "status" and data.get("phase") == WAITING_APPROVAL and "approvals" in data


def is_last(envelope: dict) -> bool:
    """Whether a run's stream ends after this envelope (its stop, or a pause for approvals)."""
    return envelope["type"] == "stop_reason" or is_pause(envelope)


def without_run_id(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "run_id"}
