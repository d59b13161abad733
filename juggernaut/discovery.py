"""Extension points are found, not imported: one mechanism for every ``<app>/<name>.py``.

An installed app plugs in by having a module of a known name: ``api.py`` (a ninja ``router``, mounted
at ``/api/<app label>``), ``handlers.py`` (engine task handlers, registered as it is imported),
``tools.py`` (chat tools), ``selfheal.py`` (self-heal checks and safe actions, see
``juggernaut.healing``). ``app_modules(name)`` imports them with Django's ``autodiscover_modules``,
the way the admin finds ``admin.py``, so the core never names a feature app.
"""

from importlib import import_module
from types import ModuleType

from django.apps import AppConfig, apps
from django.utils.module_loading import autodiscover_modules, module_has_submodule

# Every extension point; ``app_modules`` finds only these, so adding one is a change here, not a new
# name some caller invents.
EXTENSION_MODULES = ("api", "handlers", "tools", "selfheal")


def app_modules(name: str) -> list[tuple[AppConfig, ModuleType]]:
    """Import ``<app>.<name>`` of every installed app that has one; return them in app order.

    A module that exists but fails to import raises, so a broken extension is loud, not missing.
    """
    if name not in EXTENSION_MODULES:
        raise ValueError(f"{name!r} is not an extension module: one of {', '.join(EXTENSION_MODULES)}")
    autodiscover_modules(name)
    return [
        (config, import_module(f"{config.name}.{name}"))
        for config in apps.get_app_configs()
        if module_has_submodule(config.module, name)
    ]
