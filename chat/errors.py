from juggernaut.errors import HQError


class ChatError(HQError):
    """An expected refusal of the chat app (a busy session, an unknown mode, a run in the wrong state)."""
