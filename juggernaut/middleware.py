"""Middleware: the API's one error shape outside ninja's handlers, the request guard, and the body
limit applied in front of Django (before authentication and before the body is buffered)."""

import json

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


# --- body limits ---------------------------------------------------------------------------------
#
# One limit per request: ``HQ_MAX_BODY_BYTES`` everywhere, except the paths an app registers with a
# larger (or smaller) limit of its own setting (``/api/logs/ingest``: ``LOGS_INGEST_MAX_BYTES``). The
# same limit is applied at three depths: by the server while the body arrives (juggernaut.serve),
# by ``BodyLimit`` in front of Django, and by ``request_guard`` for whatever reaches Django otherwise.

_body_limits: dict[str, str] = {}  # path -> name of the setting holding its limit


def body_limit_register(path: str, setting: str) -> None:
    """Give ``path`` the body limit held by ``setting`` (read on each request, so tests can override
    it); call from ``AppConfig.ready``."""
    _body_limits[path] = setting


def body_limit(path: str) -> int:
    """The largest body, in bytes, a request to ``path`` may carry."""
    setting = _body_limits.get(path.rstrip("/") or "/")
    return int(getattr(settings, setting)) if setting else settings.HQ_MAX_BODY_BYTES


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


def _oversized(request: HttpRequest) -> int | None:
    """The limit ``request``'s body breaks, if it does."""
    limit = body_limit(request.path)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return limit
    if length < 0 and request.method in ("POST", "PUT", "PATCH") and limit <= settings.HQ_MAX_BODY_BYTES:
        # no Content-Length (chunked): BodyLimit counted it on the way in; this reads what is left
        length = len(request.body)
    return limit if length > limit else None


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
    limit = _oversized(request)
    if limit is not None:
        return refusal_response(request, body_too_large(limit))
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


# --- the body limit in front of Django ----------------------------------------------------------------


class BodyLimit:
    """ASGI middleware: a body over its path's limit is refused with 413 before Django reads it (so
    before authentication, and before Django spools it): at once when ``Content-Length`` says so,
    otherwise as soon as the bytes received pass the limit (a chunked upload stops being read there)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = _declared_length(scope)
        if declared is None or declared > limit:
            await _refuse(scope, send, limit)
            return
        received, over = 0, False

        async def bounded_receive() -> dict:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Django takes a disconnect as the end of the request and answers nothing
                    over = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, bounded_receive, send)
        if over:
            await _refuse(scope, send, limit)


def _declared_length(scope) -> int | None:
    """The ``Content-Length`` (0 when absent), or None when it is not a number."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return 0


def body_refusal(path: str, limit: int) -> tuple[bytes, bytes]:
    """The 413 answer's content type and body, outside Django: the error shape under /api/, a line
    of text elsewhere (the page needs a request the server never built)."""
    error = body_too_large(limit)
    if path.startswith("/api/"):
        return b"application/json", json.dumps(error.as_dict()).encode()
    return b"text/plain; charset=utf-8", f"{error.message}\n".encode()


async def _refuse(scope, send, limit: int) -> None:
    content_type, body = body_refusal(scope["path"], limit)
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    # the rest of the body is never read: the connection cannot carry another request
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
