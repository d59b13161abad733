from juggernaut.errors import HQError


class SelfHealError(HQError):
    """An expected refusal of the self-heal app (unknown action, breaker open)."""

    status = 422
