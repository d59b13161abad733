"""Extension points are found, not imported: one mechanism for every ``<app>/<name>.py``.

An installed app plugs in by having a module of a known name: ``api.py`` (a ninja ``router``, mounted
at ``/api/<app label>``), ``handlers.py`` (engine task handlers, registered as it is imported),
``tools.py`` (chat tools), ``selfheal.py`` (self-heal checks and safe actions, see
``juggernaut.healing``), ``tasks.py`` (django-q2 entry points and the app's ``SCHEDULES``, see
``juggernaut.schedules``). ``app_modules(name)`` imports them the way Django's
``autodiscover_modules`` finds ``admin.py``, but only of apps that are switched on
(``juggernaut.features``): importing a module registers what it declares, so a switched-off app's
modules are never imported. The core never names a feature app.
"""

from importlib import import_module
from types import ModuleType

from django.apps import AppConfig, apps
from django.utils.module_loading import module_has_submodule

from juggernaut.features import feature_enabled

# Every extension point; ``app_modules`` finds only these, so adding one is a change here, not a new
# name some caller invents.
EXTENSION_MODULES = ("api", "handlers", "tools", "selfheal", "tasks")


def app_modules(name: str) -> list[tuple[AppConfig, ModuleType]]:
    """Import ``<app>.<name>`` of every switched-on app that has one; return them in app order.

    A module that exists but fails to import raises, so a broken extension is loud, not missing.
    """
    if name not in EXTENSION_MODULES:
        raise ValueError(f"{name!r} is not an extension module: one of {', '.join(EXTENSION_MODULES)}")
    return [
        (config, import_module(f"{config.name}.{name}"))
        for config in apps.get_app_configs()
        if feature_enabled(config.label) and module_has_submodule(config.module, name)
    ]
