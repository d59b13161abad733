from juggernaut import features

# What the engine records as the source of the tasks this app creates.
TASK_SOURCE = "selfheal"


class SelfhealConfig(features.FeatureConfig):
    name = "selfheal"
    verbose_name = "Self-Heal"
    default_auto_field = "django.db.models.BigAutoField"

    def plug_in(self) -> None:
        from juggernaut import feed, hq
        from juggernaut.engine.sources import source_register
        from selfheal import live

        source_register(TASK_SOURCE, app=self.label)
        feed.feed_register("selfheal", live.describe_event)
        hq.area_register("selfheal", live.selfheal_area_status, label="Self-Heal", url_name="selfheal:index")
        hq.fragments_register(
            "selfheal",
            live.render_events,
            resync=live.render_fragments,
            page="selfheal",
            timed=live.render_fragments,
        )
