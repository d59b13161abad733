from django.apps import AppConfig


class LogscrawlerConfig(AppConfig):
    name = "logscrawler"
    verbose_name = "Railway logs crawler"
    default_auto_field = "django.db.models.BigAutoField"
