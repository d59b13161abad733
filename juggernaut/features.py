"""Feature apps and their switches.

A feature app is installed always and switched on or off by ``<LABEL>_ENABLED`` (``FEATURE_APPS``
in the settings). Switched off, it is installed but inert: its tables and migrations stay (other apps'
migrations and foreign keys keep working, and switching it back on loses nothing), but it plugs
nothing in: no URLs, no API router, no tools, handlers, schedules or self-heal checks (discovery
skips it), no Overview line, no live fragments. Apps that are not features (the kernel, the engine)
cannot be switched off.
"""

from django.apps import AppConfig, apps
from django.conf import settings


def feature_enabled(label: str) -> bool:
    """Whether the app labelled ``label`` plugs in (apps that are not features always do): its own
    switch is on, and so are the switches of the features it ``requires``."""
    if not settings.FEATURE_APPS.get(label, True):
        return False
    try:
        config = apps.get_app_config(label)
    except LookupError:
        return True
    return all(feature_enabled(required) for required in getattr(config, "requires", ()))


def module_enabled(module_name: str) -> bool:
    """Whether the app that holds the module ``module_name`` is switched on."""
    config = apps.get_containing_app_config(module_name)
    return config is None or feature_enabled(config.label)


class FeatureConfig(AppConfig):
    """The ``AppConfig`` of a feature app: it plugs in (``plug_in``) only while switched on.

    What protects data it already stored (a topic guard on its events) is registered in ``ready()``
    before ``super().ready()``, so it holds whatever the switch says.

    Subclass it as ``features.FeatureConfig``: a second config class in an app's ``apps.py`` would
    make Django fall back to a plain ``AppConfig``."""

    # Labels of the features this one cannot work without: switching one off switches this off too.
    requires: tuple[str, ...] = ()

    def ready(self) -> None:
        if feature_enabled(self.label):
            self.plug_in()

    def plug_in(self) -> None:
        """Register the app's Overview area, live fragments, feed wording and task sources."""
