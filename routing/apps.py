from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "OpenRouter routing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from juggernaut import hq
        from routing import live

        hq.area_register("routing", live.routing_area_status, url_name="routing:index")
        hq.fragments_register("routing", live.render_events, resync=live.render_resync, page="routing")
