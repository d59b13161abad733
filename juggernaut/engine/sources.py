"""Who creates tasks: ``Task.source`` is a slug that the app creating them registers.

The engine knows only its own ``operator`` (a person, through a page or the API). Every other app
registers its slug in its ``AppConfig.ready()`` (``source_register("logs")``), so the engine names
none of its callers; the slug of a switched-off app is refused like an unknown one.
"""

import re

from django.apps import apps

from juggernaut.features import feature_enabled

OPERATOR = "operator"
# A slug fits Task.source (20 characters) and reads well in a URL query.
SLUG_RE = re.compile(r"^[a-z][a-z0-9_-]{0,19}$")

_registered: dict[str, str] = {}  # slug -> label of the app that registered it


def source_register(slug: str, *, app: str) -> None:
    """Let the app labelled ``app`` create tasks with ``source=slug``."""
    if not SLUG_RE.match(slug):
        raise ValueError(f"task source {slug!r}: 1 to 20 lowercase letters, digits, _ and -")
    apps.get_app_config(app)  # raises LookupError for an app that is not installed
    owner = _registered.setdefault(slug, app)
    if owner != app:
        raise ValueError(f"task source {slug!r} is already registered by {owner}")


def sources() -> list[str]:
    """The slugs tasks may be created with: switched-on apps' in registration order, then ``operator``."""
    return [slug for slug, app in _registered.items() if feature_enabled(app)] + [OPERATOR]


def source_choices() -> list[tuple[str, str]]:
    """The sources as form choices (``codehealth`` reads ``Codehealth``)."""
    return [(slug, slug.capitalize()) for slug in sources()]
