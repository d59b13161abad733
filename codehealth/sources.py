"""What a scan reads besides the checkout: the package registries, OSV's advisories and a running
instance's OpenAPI document. Each answer that cannot be had is said in words, so the part of the
audit it feeds reports "not run" instead of clean.
"""

import json
from collections.abc import Callable
from pathlib import Path

import requests
from django.conf import settings

from juggernaut.http import http_session, url_shown

SCHEMA_MAX_BYTES = 10_000_000


def registry_fetcher() -> Callable[[str], dict | None]:
    """A fetcher of registry answers as JSON over one session (a scan asks once per package);
    None when the package is unknown or the registry unreachable (the audit then reports that part
    as not run or partial, never as clean)."""
    session = http_session(max_retries=1, timeout=10)

    def fetch(url: str) -> dict | None:
        try:
            response = session.get(url, headers={"Accept": "application/json"})
        except requests.RequestException:
            return None
        if response.status_code != 200:
            return None
        try:
            data = response.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    return fetch


def advisories_refresh(path: Path) -> dict:
    """Refresh the OSV snapshot for the checkout's packages before the audit reads it (see
    ``codehealth.osv``); the scan keeps the outcome as its ``osv`` note."""
    if not (settings.CODEHEALTH_REGISTRY_LOOKUPS and settings.CODEHEALTH_OSV_SNAPSHOT and settings.CODEHEALTH_OSV_URL):
        return {}
    from codehealth import osv  # lazy, like the analysers
    from codehealth.dependencies import declared_dependencies

    refresh = osv.snapshot_refresh(settings.CODEHEALTH_OSV_SNAPSHOT, declared_dependencies(path),
                                   base_url=settings.CODEHEALTH_OSV_URL, session=http_session(timeout=20))  # fmt: skip
    return {"osv": refresh.note}


def schema_fetch(url: str) -> tuple[dict | None, str]:
    """A running instance's OpenAPI document, or None and why not (the scan then reports the contract
    check as not run, never as clean). Read with a size cap: the URL is the operator's, the answer not.
    Messages name the URL without its query or credentials, which may hold a key."""
    shown = url_shown(url)
    try:
        with http_session(max_retries=1, timeout=15).get(url, headers={"Accept": "application/json"},
                                                         stream=True) as response:  # fmt: skip
            if response.status_code != 200:
                return None, f"the API schema at {shown} answered HTTP {response.status_code}"
            body = bytearray()
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > SCHEMA_MAX_BYTES:
                    break
    except requests.RequestException as exc:
        return None, f"the API schema at {shown} could not be fetched ({exc.__class__.__name__})"
    if len(body) > SCHEMA_MAX_BYTES:
        return None, f"the API schema at {shown} is larger than {SCHEMA_MAX_BYTES:,} bytes"
    try:
        document = json.loads(body)
    except ValueError:
        return None, f"the API schema at {shown} is not JSON"
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        return None, f"the API schema at {shown} is not an OpenAPI document (no paths)"
    return document, ""
