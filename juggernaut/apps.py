from django.apps import AppConfig


class JuggernautConfig(AppConfig):
    name = "juggernaut"
    verbose_name = "Juggernaut HQ"
    default_auto_field = "django.db.models.BigAutoField"
