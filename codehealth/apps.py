from juggernaut import features

# What the engine records as the source of the tasks this app creates.
TASK_SOURCE = "codehealth"


class CodehealthConfig(features.FeatureConfig):
    name = "codehealth"
    verbose_name = "Code health"
    default_auto_field = "django.db.models.BigAutoField"

    def plug_in(self) -> None:
        from codehealth import live
        from juggernaut import feed, hq
        from juggernaut.engine.sources import source_register

        source_register(TASK_SOURCE, app=self.label)
        hq.area_register(
            "codehealth",
            live.codehealth_area_status,
            label="Code Health",
            url_name="codehealth:index",
            per_viewer=True,
        )
        hq.fragments_register(
            "codehealth",
            live.render_index,
            resync=live.render_index,
            timed=live.render_index,
            page=live.INDEX_PAGE,
            per_viewer=True,
        )
        hq.fragments_register(
            "codehealth",
            live.render_detail_events,
            resync=live.render_detail,
            timed=live.render_detail,
            page=live.PAGE_PREFIX,
            family=True,
            per_viewer=True,
        )
        feed.feed_register("codehealth", live.describe_event)
