"""The logs JSON API, mounted at ``/api/logs``: ingest lines from any source, read the top errors.

Scopes: ``write`` to ingest, ``read`` for listings. A signed-in session has every scope.
"""

from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router

from juggernaut.auth import require_scope
from juggernaut.openapi import ndjson_body
from juggernaut.schemas import Choice, DbId
from logscrawler import schemas, selectors, services
from logscrawler.errors import LogsError
from logscrawler.ingest import WHERE_TO_ADD, ndjson_ingest
from logscrawler.models import ErrorFingerprint, LogAlert

PREFIX = "/logs"  # the app label is "logscrawler"; operators and other sources know it as logs
router = Router(tags=["logs"])


def _lines(request: HttpRequest) -> Iterator[bytes]:
    """The body's lines, read one at a time (never the whole body at once). The size was checked
    before the body was read (``juggernaut.middleware``: ``LOGS_INGEST_MAX_BYTES`` on this path); the
    read stops at the limit all the same."""
    budget = settings.LOGS_INGEST_MAX_BYTES
    while budget > 0:
        raw = request.readline(budget)
        if not raw:
            return
        budget -= len(raw)
        yield raw


@router.post(
    "/ingest",
    response=schemas.IngestOut,
    openapi_extra=ndjson_body(schemas.IngestLineIn, "NDJSON: one `IngestLineIn` object per line"),
)
def ingest(request):
    """Store NDJSON log lines ``{service, timestamp, message, severity?, attributes?, id?}``.

    Up to ``LOGS_INGEST_MAX_BYTES`` per request (413 above). Each bad line (not UTF-8, not JSON,
    nested deeper than 32 levels, a missing field, a control character in ``service`` or ``id``, a
    date outside 1970 to 9998, a service that does not exist while ``LOGS_INGEST_CREATE_SERVICES`` is
    off) is listed in ``rejected`` with its line number;
    the other lines are kept. At most ``LOGS_INGEST_MAX_REJECTED`` rejections are listed (the first
    ones); ``rejected_more`` counts the rest. Non-finite numbers in attributes are stored as null. A
    line sent again (same ``id``, or same service, timestamp and message) counts as a duplicate.
    Lines are committed ``LOGS_INGEST_BATCH_LINES`` at a time: a request cut short keeps what was
    committed, and sending it again stores nothing twice. A service named for the first time is
    created (``LOGS_INGEST_CREATE_SERVICES``, on by default); with it off, a request whose every line
    names a missing service answers 422 saying where to add one.
    """
    require_scope(request, "write")
    summary = ndjson_ingest(_lines(request))
    if summary.only_unknown_services:
        raise LogsError(
            "unknown_service",
            f"no such service: {WHERE_TO_ADD}, or set LOGS_INGEST_CREATE_SERVICES",
            status=422,
            details=summary.as_dict(),
        )
    return summary.as_dict()


@router.get("/top-errors", response=schemas.TopErrorsOut)
def top_errors(request, query: Query[schemas.TopErrorsQuery]):
    """The fingerprints with the most occurrences in the last hour or day, for one service or all."""
    require_scope(request, "read")
    service = None
    if query.service:
        service = services.services_by_name({query.service}).get(query.service)
        if service is None:
            raise LogsError("not_found", f"no service {query.service[:120]!r}", status=404)
    items = [
        _fingerprint_out(fp, count=total) for fp, total in selectors.top_errors(query.window, service=service)
    ]
    return {"window": query.window, "items": items}


# A mapping, not the schema reading the row: the count is the window's total in the top errors and
# the row's in the detail, and only the detail reads samples.
def _fingerprint_out(fp: ErrorFingerprint, *, count: int) -> dict:
    return {
        "fingerprint_id": fp.pk,
        "service": fp.service.name,
        "template": fp.template,
        "exception_type": fp.exception_type,
        "count": count,
        "first_seen": fp.first_seen,
        "last_seen": fp.last_seen,
        "status": fp.status,
        "task_id": fp.task_id,
    }


def _fingerprint(fingerprint_id: DbId) -> ErrorFingerprint:
    fp = ErrorFingerprint.objects.select_related("service").filter(pk=fingerprint_id).first()
    if fp is None:
        raise LogsError("not_found", f"no fingerprint {fingerprint_id}", status=404)
    return fp


@router.get("/fingerprints/{fingerprint_id}", response=schemas.FingerprintOut)
def fingerprint_detail(request, fingerprint_id: DbId):
    """One fingerprint with its total count and its ten latest samples."""
    require_scope(request, "read")
    fp = _fingerprint(fingerprint_id)
    samples = [
        {"timestamp": o.timestamp, "message": o.line.message}
        for o in fp.occurrences.select_related("line").order_by("-timestamp")[:10]
    ]
    return {**_fingerprint_out(fp, count=fp.count), "merged_into": fp.merged_into_id, "samples": samples}


@router.post("/fingerprints/{fingerprint_id}/{action}", response=schemas.FingerprintOut)
def fingerprint_action(request, fingerprint_id: DbId, action: Choice(services.ACTIONS)):  # type: ignore[valid-type]
    """``acknowledge``, ``resolve`` or ``ignore`` a fingerprint (its open alerts close with it)."""
    principal = require_scope(request, "write")
    fp = services.fingerprint_set_status(_fingerprint(fingerprint_id), action, actor=principal.actor)
    return {**_fingerprint_out(fp, count=fp.count), "merged_into": fp.merged_into_id, "samples": []}


@router.get("/alerts", response=list[schemas.AlertOut])
def alerts(request, open: bool = True):
    """Alerts, newest first: the open ones (default) or all of the last 200."""
    require_scope(request, "read")
    rows = LogAlert.objects.select_related("service")
    if open:
        rows = rows.filter(closed_at__isnull=True)
    return rows[:200]
