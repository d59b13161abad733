from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "juggernaut.engine"
    label = "engine"
    verbose_name = "Engine"
    default_auto_field = "django.db.models.BigAutoField"
