from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "juggernaut.engine"
    label = "engine"
    verbose_name = "Engine"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from juggernaut import feed, hq
        from juggernaut.discovery import app_modules
        from juggernaut.engine import live, services

        app_modules("handlers")
        hq.area_register("engine", services.engine_area_status, label="Engine", url_name="engine:index")
        hq.fragments_register(
            "engine", live.render_events, resync=live.render_resync, page="engine", timed=live.render_timed
        )
        feed.feed_register("engine", live.describe_event)
