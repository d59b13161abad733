from juggernaut.errors import HQError


class CodehealthError(HQError):
    """An expected failure of code health (bad input, an unknown repository, GitHub refusing)."""
