from juggernaut.engine import handlers


@handlers.register("plugin.ping", timeout=5)
def ping(ctx: handlers.HandlerContext) -> str:
    """Answers pong."""
    return "pong"
