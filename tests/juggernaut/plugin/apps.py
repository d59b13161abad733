from django.apps import AppConfig


class PluginConfig(AppConfig):
    name = "tests.juggernaut.plugin"
    label = "plugin"
