from juggernaut.errors import HQError


class RoutingError(HQError):
    """An expected refusal of routing: ``no_model_fits``, ``budget_exceeded``, ``model_error``…"""

    status = 409
