"""Apps plug in by module name: api.py, handlers.py and tools.py are found by one mechanism."""

import pytest
from django.conf import settings
from django.test import override_settings

from juggernaut.discovery import EXTENSION_MODULES, app_modules
from juggernaut.engine import handlers

PLUGIN = "tests.juggernaut.plugin"


@pytest.mark.django_db
def test_it_mounts_the_engine_router_found_in_its_api_module(alice_client):
    paths = alice_client.get("/api/openapi.json").json()["paths"]
    assert "/api/engine/tasks" in paths
    assert "/api/events/{topic}" in paths and "/api/tokens" in paths


def test_it_finds_tools_and_handlers_of_an_installed_app():
    assert {"api", "handlers", "tools"} <= set(EXTENSION_MODULES)
    assert PLUGIN not in [c.name for c, _ in app_modules("tools")]
    try:
        with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, PLUGIN]):
            tools = {config.name: module for config, module in app_modules("tools")}
            assert tools[PLUGIN].plugin_ping() == "pong"
            found = [config.name for config, _ in app_modules("handlers")]
            assert PLUGIN in found and "juggernaut.engine" in found
            assert handlers.lookup("plugin.ping").description == "Answers pong."
    finally:
        handlers.unregister("plugin.ping")


def test_it_finds_only_the_declared_extension_modules():
    with pytest.raises(ValueError, match="not an extension module"):
        app_modules("views")
