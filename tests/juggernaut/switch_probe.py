"""What a process started with some ``<LABEL>_ENABLED=0`` plugs in, as JSON on stdout.

``python -m tests.juggernaut.switch_probe <username> <path>…``: the status of each path for that
operator, the Overview's area lines and navigation, the API's operations, the tools offered, the
schedules declared, the self-heal checks and the task sources.
"""

import json
import re
import sys

import django

django.setup()

from django.apps import apps  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from chat.tools_registry import registry, tool_get  # noqa: E402
from juggernaut.engine.sources import sources  # noqa: E402
from juggernaut.healing import registry_load  # noqa: E402
from juggernaut.schedules import declared  # noqa: E402


def app_of(func) -> str:
    return apps.get_containing_app_config(func.__module__).label


def main(username: str, paths: list[str]) -> dict:
    client = Client(HTTP_HOST="localhost")  # one of the hosts a development HQ answers
    client.force_login(get_user_model().objects.get(username=username))
    overview = client.get("/")
    checks, actions = registry_load()
    return {
        "status": {path: client.get(path).status_code for path in paths},
        "overview": overview.status_code,
        "areas": re.findall(r'id="hq-area-([\w-]+)"', overview.content.decode()),
        "nav": re.findall(r'<a href="(/[\w-]*/?)" class="[^"]*">', overview.content.decode()),
        "api": sorted(client.get("/api/openapi.json").json()["paths"]),
        "tools": sorted({t.app for name, t in registry().items() if tool_get(name)}),
        "schedules": sorted(d.name for d in declared()),
        "checks": sorted({app_of(c.func) for c in checks.values()}),
        "actions": sorted({app_of(a.func) for a in actions.values()}),
        "sources": sources(),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))
