"""The engine task kind that runs a chat run (``CHAT_RUNNER=engine``)."""

from chat import services
from juggernaut.engine.handlers import HandlerContext, PermanentError, register


@register("chat_run", timeout=900)
def chat_run(ctx: HandlerContext) -> dict:
    """Executes a chat run until it stops or waits for approval."""
    run_id = ctx.payload.get("run_id")
    if not isinstance(run_id, int):
        raise PermanentError("payload.run_id must be a chat run's id")
    return {"run_id": run_id, "outcome": services.run_execute_job(run_id)}
