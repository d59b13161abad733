from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat import live, overview, runs
        from juggernaut import events, hq

        hq.area_register("chat", overview.chat_area_status, url_name="chat:index")
        live.register()
        events.topic_guard_register("chat.run.", runs.run_topic_readable)
