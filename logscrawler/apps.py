from juggernaut import features

# What the engine records as the source of the tasks this app creates.
TASK_SOURCE = "logs"


class LogscrawlerConfig(features.FeatureConfig):
    name = "logscrawler"
    verbose_name = "Railway logs crawler"
    default_auto_field = "django.db.models.BigAutoField"

    def plug_in(self) -> None:
        from juggernaut import hq
        from juggernaut.engine.sources import source_register
        from juggernaut.middleware import body_limit_register
        from logscrawler import live

        source_register(TASK_SOURCE, app=self.label)
        hq.area_register("logs", live.logs_area_status, label="System Health", url_name="logs:index")
        body_limit_register("/api/logs/ingest", "LOGS_INGEST_MAX_BYTES")
        hq.fragments_register("logs", live.render_events, resync=live.render_resync, page="logs")
        hq.origin_register("fingerprint", "logs:fingerprint", "Error")
        hq.fragments_register(
            "logs", live.render_detail, resync=live.render_detail_resync, page=live.DETAIL_PAGE, family=True
        )
