"""The chat brain's self-heal tool."""

from juggernaut.tools import tool, tool_actor
from selfheal import services


# It records an execution and its checks call external APIs (GitHub, Railway, OpenRouter) with the HQ's
# keys: safe to run without approval, but at most once per chat run, whatever a log line asks for.
@tool(safe=True, per_run=1)
def diagnose() -> dict:
    """Diagnose the whole system (workers, queue, jobs, errors, database, external APIs, budgets) and
    return every finding with its severity, evidence and recommended action. At most once per run."""
    execution = services.diagnose_run(trigger="chat", actor=tool_actor())
    return {
        "id": execution.pk,
        "duration_ms": execution.duration_ms,
        "findings": execution.report["findings"],
        "checks": execution.report["checks"],
    }
