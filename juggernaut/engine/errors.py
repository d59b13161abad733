from juggernaut.errors import HQError


class EngineError(HQError):
    """An expected failure of the engine (unknown task, lost lease, illegal transition)."""

    status = 409
