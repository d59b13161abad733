import os

from django.apps import AppConfig

from juggernaut.db import forget_inherited_pools


class JuggernautConfig(AppConfig):
    name = "juggernaut"
    verbose_name = "Juggernaut HQ"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        os.register_at_fork(after_in_child=forget_inherited_pools)
