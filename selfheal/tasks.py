"""django-q2 entry points (thin: they call services)."""

from selfheal import services


def auto_heal() -> int:
    return services.auto_heal_run().pk
