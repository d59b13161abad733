from django.apps import AppConfig


class CodehealthConfig(AppConfig):
    name = "codehealth"
    verbose_name = "Code health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from codehealth import live
        from juggernaut import hq

        hq.area_register("codehealth", live.codehealth_area_status, url_name="codehealth:index")
