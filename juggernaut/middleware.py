"""Middleware: the API's one error shape outside ninja's handlers, and the request guard."""

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.decorators import sync_and_async_middleware
from django.utils.http import url_has_allowed_host_and_scheme

from juggernaut.errors import HQError
from juggernaut.inputs import nul_refusal
from juggernaut.redaction import scrub


def _reshape(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if response.status_code != 405 or not request.path.startswith("/api/"):
        return response
    allowed = response.get("Allow", "")
    error = HQError(
        "method_not_allowed",
        f"{request.method} is not allowed here",
        details={"allowed": [m.strip() for m in allowed.split(",") if m.strip()]},
    )
    shaped = JsonResponse(error.as_dict(), status=405)
    if allowed:
        shaped["Allow"] = allowed
    return shaped


@sync_and_async_middleware
def api_error_shape(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest):
            return _reshape(request, await get_response(request))

    else:

        def middleware(request: HttpRequest):
            return _reshape(request, get_response(request))

    return middleware


# --- the request guard ------------------------------------------------------------------------------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def refusal_response(request: HttpRequest, exc: HQError, *, headers: dict | None = None) -> HttpResponse:
    """An expected refusal outside a view: the error shape under /api/, a short page elsewhere."""
    if _is_api(request):
        response = JsonResponse(exc.as_dict(), status=exc.status)
    else:
        ctx = {"status": exc.status, "message": exc.message}
        response = render(request, "juggernaut/error.html", ctx, status=exc.status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def body_too_large(limit: int | None = None) -> HQError:
    limit = limit or settings.HQ_MAX_BODY_BYTES
    return HQError(
        "body_too_large",
        f"the request body is larger than {limit:,} bytes",
        status=413,
        details={"limit": limit},
    )


def database_busy() -> HQError:
    return HQError(
        "database_busy",
        "the database is busy or unreachable; retry shortly",
        status=503,
        details={"retry_after": settings.HQ_RETRY_AFTER_SECONDS},
    )


def _oversized(request: HttpRequest) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return True
    if length < 0 and request.method in ("POST", "PUT", "PATCH"):
        length = len(request.body)  # no Content-Length (chunked): the ASGI handler has read it whole
    return length > settings.HQ_MAX_BODY_BYTES


def _nul_in_fields(request: HttpRequest) -> str | None:
    # HTML pages read their query strings through forms, whose fields refuse NUL themselves (a form
    # error on the page); the API and every POSTed form are checked here.
    sources = [request.GET] if _is_api(request) else []
    if request.method == "POST" and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sources.append(request.POST)
    for data in sources:
        for key, values in data.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return key
    return None


def _guard(request: HttpRequest) -> HttpResponse | None:
    if _oversized(request):
        return refusal_response(request, body_too_large())
    field = _nul_in_fields(request)
    if field is None:
        return None
    if _is_api(request):
        return refusal_response(request, nul_refusal(field))
    # An HTML form: nothing is done; the page it came from shows why.
    messages.error(request, f"Nothing was changed: the field “{field}” contains a NUL character.")
    back = request.headers.get("Referer", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "/"
    response = redirect(back)
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = back
    return response


def _db_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse | None:
    if isinstance(exc, OperationalError):
        retry = str(settings.HQ_RETRY_AFTER_SECONDS)
        return refusal_response(request, database_busy(), headers={"Retry-After": retry})
    if isinstance(exc, RequestDataTooBig):
        return refusal_response(request, body_too_large())
    return None


def _scrub_debug_page(response: HttpResponse) -> HttpResponse:
    """Django's debug 404 page quotes the URL, query string included: pass debug pages through scrub."""
    if (
        settings.DEBUG
        and response.status_code >= 400
        and not response.streaming
        and response.get("Content-Type", "").startswith("text/html")
    ):
        response.content = scrub(response.content.decode(response.charset, "replace"))
    return response


def _guard_safely(request: HttpRequest) -> HttpResponse | None:
    try:
        return _guard(request)
    except RequestDataTooBig:
        return refusal_response(request, body_too_large())


@sync_and_async_middleware
def request_guard(get_response):
    """Refuse what no view should see: oversized bodies (413) and NUL characters in query strings
    and forms (422 in the API, a form error on HTML pages); answer 503 + Retry-After when the
    database has no connection to give (the pool's wait timed out or the server is down)."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest):
            refused = await sync_to_async(_guard_safely)(request)
            return refused or _scrub_debug_page(await get_response(request))

    else:

        def middleware(request: HttpRequest):
            return _guard_safely(request) or _scrub_debug_page(get_response(request))

    middleware.process_exception = _db_unavailable  # type: ignore[attr-defined]
    return middleware
