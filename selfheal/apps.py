from django.apps import AppConfig


class SelfhealConfig(AppConfig):
    name = "selfheal"
    verbose_name = "Self-Heal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from juggernaut import hq
        from selfheal import live

        hq.area_register("selfheal", live.selfheal_area_status, url_name="selfheal:index")
        hq.fragments_register(
            "selfheal",
            live.render_events,
            resync=live.render_fragments,
            page="selfheal",
            timed=live.render_fragments,
        )
