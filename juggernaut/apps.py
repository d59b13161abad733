import os

from django.apps import AppConfig
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper


def _forget_inherited_pools() -> None:
    """A forked child (django-q2's workers) must not use its parent's pool: the pool's threads did not
    survive the fork and its sockets belong to the parent. Drop it, unclosed; the child opens its own."""
    PostgresWrapper._connection_pools.clear()


class JuggernautConfig(AppConfig):
    name = "juggernaut"
    verbose_name = "Juggernaut HQ"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        os.register_at_fork(after_in_child=_forget_inherited_pools)
