"""What a scan reads besides the checkout: the package registries, OSV's advisories and a running
instance's OpenAPI document. Each answer that cannot be had is said in words, so the part of the
audit it feeds reports "not run" instead of clean.
"""

import json
from collections.abc import Callable

import requests
from django.conf import settings

from juggernaut.http import url_shown
from juggernaut.urlguard import OutboundRefused, guarded_session

SCHEMA_MAX_BYTES = 10_000_000


def registry_fetcher() -> Callable[[str], dict | None]:
    """A fetcher of registry answers as JSON over one session (a scan asks once per package);
    None when the package is unknown or the registry unreachable (the audit then reports that part
    as not run or partial, never as clean)."""
    session = guarded_session(max_retries=1, timeout=10)

    def fetch(url: str) -> dict | None:
        try:
            response = session.get(url, headers={"Accept": "application/json"})
        except (requests.RequestException, OutboundRefused):
            return None
        if response.status_code != 200:
            return None
        try:
            data = response.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    return fetch


def advisories_refresh(deps: list) -> dict:
    """Refresh the OSV snapshot for the checkout's packages (``deps``, as the sandbox read them) before
    the audit reads it (see ``codehealth.osv``); the scan keeps the outcome as its ``osv`` note."""
    if not (
        settings.CODEHEALTH_REGISTRY_LOOKUPS
        and settings.CODEHEALTH_OSV_SNAPSHOT
        and settings.CODEHEALTH_OSV_URL
    ):
        return {}
    from codehealth import osv  # lazy, like the analysers

    refresh = osv.snapshot_refresh(
        settings.CODEHEALTH_OSV_SNAPSHOT,
        deps,
        base_url=settings.CODEHEALTH_OSV_URL,
        session=guarded_session(timeout=20),
    )
    return {"osv": refresh.note}


def schema_fetch(url: str) -> tuple[dict | None, str]:
    """A running instance's OpenAPI document, or None and why not (the scan then reports the contract
    check as not run, never as clean). Fetched through the outbound guard, with a size cap: the URL is
    the operator's, the answer not. Messages name the URL without its query or credentials, which may
    hold a key."""
    shown = url_shown(url)
    try:
        response = guarded_session(max_retries=1, timeout=15, max_bytes=SCHEMA_MAX_BYTES).get(
            # not followed: the operator names the URL the schema is at
            url,
            headers={"Accept": "application/json"},
            allow_redirects=False,
        )
    except OutboundRefused as exc:
        return None, f"the API schema at {shown} was not fetched: {exc}"
    except requests.RequestException as exc:
        return None, f"the API schema at {shown} could not be fetched ({exc.__class__.__name__})"
    if response.is_redirect:
        return None, f"the API schema at {shown} redirects; give the URL it redirects to"
    if response.status_code != 200:
        return None, f"the API schema at {shown} answered HTTP {response.status_code}"
    try:
        document = json.loads(response.content)
    except ValueError:
        return None, f"the API schema at {shown} is not JSON"
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        return None, f"the API schema at {shown} is not an OpenAPI document (no paths)"
    return document, ""
