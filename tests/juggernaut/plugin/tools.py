def plugin_ping() -> str:
    """Answers pong: a tool as a chat app would find it."""
    return "pong"
