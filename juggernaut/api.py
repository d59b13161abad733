"""The one NinjaAPI: its error mapping, health and API tokens, and the routers it mounts.

The core's routers are registered here by name; each installed app's ``<app>/api.py`` router is found
by ``juggernaut.discovery`` (the core imports no feature app).
"""

import logging
from datetime import datetime

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, OperationalError, connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import Field, NinjaAPI, Router, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError

import juggernaut
from juggernaut import services
from juggernaut.auth import api_auth, docs_access, require_scope
from juggernaut.discovery import app_modules
from juggernaut.errors import HQError
from juggernaut.events.api import router as events_router
from juggernaut.events.docs import STREAM_DOCS
from juggernaut.inputs import StrictJSONParser
from juggernaut.middleware import body_too_large, database_busy
from juggernaut.models import SCOPES, ApiToken
from juggernaut.openapi import LICENSE, SERVERS, TopicEvents, document_finish
from juggernaut.schemas import Choice, DbId

log = logging.getLogger(__name__)


class HQNinjaAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        """ninja documents success answers and JSON bodies only; ``juggernaut.openapi`` says the rest."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        return document_finish(schema, EVENT_TOPICS)


# Each app's ``EVENTS`` (a ``TopicEvents``): the typed envelopes of its topics, for the document.
EVENT_TOPICS: list[TopicEvents] = []


api = HQNinjaAPI(
    title="Juggernaut HQ API",
    version=juggernaut.__version__,
    description=(
        "JSON API of Juggernaut HQ. Authenticate with a signed-in session (send `X-CSRFToken` on unsafe "
        "methods) or `Authorization: Bearer <token>`. Every error has the shape "
        '`{"error": {"code", "message", "details"}}`.\n\n' + STREAM_DOCS
    ),
    auth=api_auth,
    urls_namespace="api",
    docs_decorator=docs_access,
    parser=StrictJSONParser(),
    servers=SERVERS,
    openapi_extra={"info": {"license": LICENSE}},
)


def error_response(request: HttpRequest, status: int, code: str, message: str, details=None) -> HttpResponse:
    return api.create_response(request, HQError(code, message, details=details).as_dict(), status=status)


STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "rate_limited",
}


@api.exception_handler(HQError)
def _hq_error(request, exc: HQError):
    return error_response(request, exc.status, exc.code, exc.message, exc.details)


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    return error_response(request, 422, "validation_error", "the request did not validate", exc.errors)


@api.exception_handler(AuthenticationError)
def _auth_error(request, exc):
    return error_response(request, 401, "unauthorized", "sign in, or send a valid bearer token")


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    # ninja wraps whatever the body parser raised: a refusal of ours, or a body over the limit.
    if isinstance(exc.__cause__, HQError | RequestDataTooBig):
        return api.on_exception(request, exc.__cause__)
    if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
        # ninja's word for malformed JSON: a body that does not validate, like any other.
        return error_response(request, 422, "validation_error", "the request body is not valid JSON")
    return error_response(request, exc.status_code, STATUS_CODES.get(exc.status_code, "error"), str(exc))


@api.exception_handler(Http404)
def _not_found(request, exc):
    return error_response(request, 404, "not_found", str(exc) or "not found")


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return _hq_error(request, body_too_large())


@api.exception_handler(OperationalError)
def _database_busy(request, exc):
    """The pool's wait timed out or the server refused a connection: retry, never a 500."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
    response = _hq_error(request, database_busy())
    response["Retry-After"] = str(settings.HQ_RETRY_AFTER_SECONDS)
    return response


@api.exception_handler(Exception)
def _unexpected(request, exc):
    log.exception("unhandled API error on %s %s", request.method, request.path)
    return error_response(request, 500, "internal_error", "unexpected server error; it has been logged")


def json_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Unknown paths under /api/ answer in the API's error shape, not Django's HTML 404."""
    return JsonResponse(HQError("not_found", f"no API endpoint at /api/{path}").as_dict(), status=404)


# --- health -------------------------------------------------------------------------------------


class HealthOut(Schema):
    status: Choice(["ok", "error"])  # type: ignore[valid-type]
    database: str = Field(description="`ok`, or `unreachable: <error class>`")
    version: str


@api.get(
    "/health",
    auth=None,
    response={200: HealthOut, 503: HealthOut},
    tags=["system"],
    openapi_extra={"security": []},  # public, for load balancers
)
def health(request):
    """Liveness for load balancers and `make run`: no auth, 503 when the database is unreachable."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Status(200, {"status": "ok", "database": "ok", "version": juggernaut.__version__})
    except DatabaseError as exc:
        return Status(
            503,
            {
                "status": "error",
                "database": f"unreachable: {exc.__class__.__name__}",
                "version": juggernaut.__version__,
            },
        )


# --- API tokens ---------------------------------------------------------------------------------

tokens_router = Router(tags=["tokens"])


Scope = Choice(SCOPES)


class TokenIn(Schema):
    name: str
    scopes: list[Scope]  # type: ignore[valid-type]
    days: int | None = None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# An ``ApiToken``; its times are ISO 8601 strings in full (microseconds, ``+00:00``).
class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    scopes: list[Scope]  # type: ignore[valid-type]
    status: Choice(["active", "expired", "revoked"])  # type: ignore[valid-type]
    created_at: str
    last_used_at: str | None
    expires_at: str | None

    @staticmethod
    def resolve_created_at(token: ApiToken) -> str | None:
        return _iso(token.created_at)

    @staticmethod
    def resolve_last_used_at(token: ApiToken) -> str | None:
        return _iso(token.last_used_at)

    @staticmethod
    def resolve_expires_at(token: ApiToken) -> str | None:
        return _iso(token.expires_at)


class TokenCreatedOut(TokenOut):
    token: str = Field(alias="raw")  # the raw value, in this answer only


@tokens_router.get("", response=list[TokenOut])
def tokens_list(request):
    require_scope(request, "admin")
    return services.tokens_for(request.auth.user)


@tokens_router.post("", response={201: TokenCreatedOut})
def tokens_create(request, payload: TokenIn):
    """Create a token; the raw value is in this response only."""
    require_scope(request, "admin")
    token, raw = services.token_create(
        request.auth.user, name=payload.name, scopes=payload.scopes, days=payload.days
    )
    token.raw = raw  # for this answer only: the model stores the hash
    return Status(201, token)


@tokens_router.delete("/{token_id}", response=TokenOut)
def tokens_revoke(request, token_id: DbId):
    require_scope(request, "admin")
    return services.token_revoke(request.auth.user, token_id=token_id)


api.add_router("/events", events_router)
api.add_router("/tokens", tokens_router)


def _mount_app_routers() -> None:
    """Each app's ``router`` from its ``api.py``, at ``/<app label>`` (or the module's ``PREFIX``); the
    module's ``DOCS`` (markdown), if any, becomes a section of the API's description, and its ``EVENTS``
    types its topics' envelopes in the document."""
    for config, module in app_modules("api"):
        router = getattr(module, "router", None)
        if config.name != "juggernaut" and isinstance(router, Router):
            api.add_router(getattr(module, "PREFIX", f"/{config.label}"), router)
            if isinstance(getattr(module, "EVENTS", None), TopicEvents):
                EVENT_TOPICS.append(module.EVENTS)
            if getattr(module, "DOCS", ""):
                api.description += "\n" + module.DOCS


_mount_app_routers()
