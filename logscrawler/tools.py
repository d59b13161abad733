"""Chat tools of the logs crawler: the top errors and one error's detail (read-only, safe).

Plain typed functions with docstrings, marked by ``juggernaut.tools.tool``; the chat app builds their JSON
schemas.
"""

from juggernaut.tools import tool
from logscrawler import selectors, services
from logscrawler.models import ErrorFingerprint

MAX_ITEMS = 20


@tool(safe=True)
def top_errors(window: str = "1h", service: str = "") -> list[dict]:
    """The errors seen most often in the last hour ("1h") or day ("24h"), most first, optionally for one
    service (by name): template, count, status (new, acknowledged, resolved, ignored, regressed), task."""
    if window not in selectors.WINDOWS:
        return [{"error": "window must be '1h' or '24h'"}]
    target = None
    if service:
        target = services.services_by_name({service}).get(service)
        if target is None:
            return [{"error": f"no service named {service[:120]!r}"}]
    return [
        {
            "fingerprint_id": fp.pk,
            "service": fp.service.name,
            "template": fp.template[:300],
            "exception_type": fp.exception_type,
            "count": count,
            "status": fp.status,
            "task_id": fp.task_id,
            "last_seen": fp.last_seen.isoformat(),
        }
        for fp, count in selectors.top_errors(window, service=target, limit=MAX_ITEMS)
    ]


@tool(safe=True)
def error_detail(fingerprint_id: int) -> dict:
    """One error (fingerprint) with its template, counts, first and last time seen, status, linked task
    and its five latest raw samples."""
    fp = ErrorFingerprint.objects.select_related("service").filter(pk=fingerprint_id).first()
    if fp is None:
        return {"error": f"no error with id {fingerprint_id}"}
    samples = fp.occurrences.select_related("line").order_by("-timestamp")[:5]
    return {
        "fingerprint_id": fp.pk,
        "service": fp.service.name,
        "template": fp.template,
        "exception_type": fp.exception_type,
        "count": fp.count,
        "first_seen": fp.first_seen.isoformat(),
        "last_seen": fp.last_seen.isoformat(),
        "status": fp.status,
        "task_id": fp.task_id,
        "merged_into": fp.merged_into_id,
        "samples": [
            {"timestamp": o.timestamp.isoformat(), "message": o.line.message[:2000]} for o in samples
        ],
    }
