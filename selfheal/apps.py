from django.apps import AppConfig


class SelfhealConfig(AppConfig):
    name = "selfheal"
    verbose_name = "Self-Heal"
    default_auto_field = "django.db.models.BigAutoField"
