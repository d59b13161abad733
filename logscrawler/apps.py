from django.apps import AppConfig


class LogscrawlerConfig(AppConfig):
    name = "logscrawler"
    verbose_name = "Railway logs crawler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from juggernaut import hq
        from juggernaut.middleware import body_limit_register
        from logscrawler import live

        hq.area_register("logs", live.logs_area_status, url_name="logs:index")
        body_limit_register("/api/logs/ingest", "LOGS_INGEST_MAX_BYTES")
        hq.fragments_register("logs", live.render_events, resync=live.render_resync, page="logs")
