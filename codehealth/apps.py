from django.apps import AppConfig


class CodehealthConfig(AppConfig):
    name = "codehealth"
    verbose_name = "Code health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from codehealth import live
        from juggernaut import feed, hq

        hq.area_register(
            "codehealth", live.codehealth_area_status, url_name="codehealth:index", per_viewer=True
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
