from juggernaut.errors import HQError


class LogsError(HQError):
    """An expected failure of the logs crawler (bad input, unknown service, Railway refusing)."""
