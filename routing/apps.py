from juggernaut import features


class RoutingConfig(features.FeatureConfig):
    name = "routing"
    verbose_name = "OpenRouter routing"
    default_auto_field = "django.db.models.BigAutoField"

    def plug_in(self) -> None:
        from juggernaut import hq
        from routing import live

        hq.area_register(
            "routing", live.routing_area_status, label="Routing & Costs", url_name="routing:index"
        )
        hq.fragments_register("routing", live.render_events, resync=live.render_resync, page="routing")
