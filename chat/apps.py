from juggernaut import features

# What the engine records as the source of the tasks this app creates.
TASK_SOURCE = "chat"


class ChatConfig(features.FeatureConfig):
    name = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"
    requires = ("routing",)  # every model call goes through routing

    def ready(self) -> None:
        from chat import runs
        from juggernaut import events

        # The runs already in the event log stay their owners' own while the chat is switched off.
        events.topic_guard_register("chat.run.", runs.run_topic_readable)
        super().ready()

    def plug_in(self) -> None:
        from chat import live, overview
        from juggernaut import hq
        from juggernaut.engine.sources import source_register

        source_register(TASK_SOURCE, app=self.label)
        # Chat leads the navigation; the Overview keeps app order.
        hq.area_register("chat", overview.chat_area_status, label="Chat", url_name="chat:index", nav_order=10)
        live.register()
