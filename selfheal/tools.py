"""The chat brain's self-heal tool."""

from juggernaut.tools import tool, tool_actor
from selfheal import services


@tool
def diagnose() -> dict:
    """Diagnose the whole system (workers, queue, jobs, errors, database, external APIs, budgets) and
    return every finding with its severity, evidence and recommended action."""
    execution = services.diagnose_run(trigger="chat", actor=tool_actor())
    return {
        "id": execution.pk,
        "duration_ms": execution.duration_ms,
        "findings": execution.report["findings"],
        "checks": execution.report["checks"],
    }
