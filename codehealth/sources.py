"""What a scan reads besides the checkout: the package registries, OSV's advisories and a running
instance's OpenAPI document. Each answer that cannot be had is said in words, so the part of the
audit it feeds reports "not run" instead of clean.
"""

import ipaddress
import json
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

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
        session=http_session(timeout=20),
    )
    return {"osv": refresh.note}


def schema_fetch(url: str) -> tuple[dict | None, str]:
    """A running instance's OpenAPI document, or None and why not (the scan then reports the contract
    check as not run, never as clean). Read with a size cap: the URL is the operator's, the answer not.
    Messages name the URL without its query or credentials, which may hold a key."""
    shown = url_shown(url)
    refused = _unfetchable_host(url)
    if refused:
        return None, f"the API schema at {shown} was not fetched: {refused}"
    try:
        # no redirects: a redirect could lead where the check above did not look
        with http_session(max_retries=1, timeout=15).get(
            url, headers={"Accept": "application/json"}, stream=True, allow_redirects=False
        ) as response:
            if response.is_redirect:
                return None, f"the API schema at {shown} redirects; give the URL it redirects to"
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


def _unfetchable_host(url: str) -> str:
    """Why the host of ``url`` is not fetched from the HQ's side ("" when it may be). Loopback and
    private addresses are fine (a running instance is often next door); link-local ones are not: the
    cloud metadata service lives there, with the machine's credentials."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return ""  # the fetch fails with its own words
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
            return f"{host} is a link-local, multicast or unspecified address"
    return ""
