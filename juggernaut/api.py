"""The one NinjaAPI. Each installed app adds its ``Router`` from ``<app>/api.py`` (found, not imported)."""

import asyncio
import json
import logging
from importlib import import_module
from importlib.util import find_spec

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.apps import apps
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, OperationalError, close_old_connections, connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from ninja import NinjaAPI, Path, Query, Router, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError

import juggernaut
from juggernaut import services
from juggernaut.auth import api_auth, docs_access, origin_allowed, require_scope
from juggernaut.errors import HQError
from juggernaut.events import TOPIC_RE, EventError, events_after, last_seqs, topic_validate
from juggernaut.events.consumers import EventSubscriber
from juggernaut.events.docs import STREAM_DOCS
from juggernaut.events.relay import get_relay
from juggernaut.inputs import BIGINT_MAX, StrictJSONParser
from juggernaut.middleware import body_too_large, database_busy
from juggernaut.schemas import DbId, declare_errors

log = logging.getLogger(__name__)

class HQNinjaAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        """ninja documents success answers only; add the refusals every operation can give."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        return declare_errors(schema)


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
)


def error_response(request: HttpRequest, status: int, code: str, message: str, details=None) -> HttpResponse:
    return api.create_response(
        request, {"error": {"code": code, "message": message, "details": details}}, status=status
    )


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
    return JsonResponse(
        {"error": {"code": "not_found", "message": f"no API endpoint at /api/{path}", "details": None}},
        status=404,
    )


# --- health -------------------------------------------------------------------------------------


class HealthOut(Schema):
    status: str
    database: str
    version: str


@api.get("/health", auth=None, response={200: HealthOut, 503: HealthOut}, tags=["system"])
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


# --- events -------------------------------------------------------------------------------------

events_router = Router(tags=["events"])


class EnvelopeOut(Schema):
    v: int
    seq: int
    topic: str
    type: str
    ts: str
    run_id: int | None
    data: dict


class EventPageOut(Schema):
    topic: str
    last_seq: int
    events: list[EnvelopeOut]


def _topic(topic: str) -> str:
    try:
        return topic_validate(topic)
    except EventError as exc:
        raise HQError("bad_topic", str(exc), status=400) from exc


Topic = Path(..., pattern=TOPIC_RE.pattern)


@events_router.get("/{topic}", response=EventPageOut)
def events_replay(
    request,
    topic: str = Topic,
    after_seq: int = Query(0, ge=0, le=BIGINT_MAX),
    limit: int = Query(100, ge=1, le=1000),
):
    """Events of a topic with `seq > after_seq`, oldest first (at most `limit`, up to 1000)."""
    require_scope(request, "read")
    _topic(topic)
    return {
        "topic": topic,
        "last_seq": last_seqs([topic]).get(topic, 0),
        "events": events_after(topic, after_seq, limit=limit),
    }


@events_router.get("/{topic}/stream", response={200: None})
async def events_stream(
    request, topic: str = Topic, after_seq: int | None = Query(None, ge=0, le=BIGINT_MAX)
):
    """Server-sent events: `id:` is the seq; resume with `Last-Event-ID` or `after_seq`; `: ping` heartbeats."""
    await sync_to_async(require_scope)(request, "read")
    _topic(topic)
    if not origin_allowed(request.headers.get("Origin"), request.get_host()):
        raise HQError("bad_origin", "this origin may not read the event stream", status=403)
    resume = request.headers.get("Last-Event-ID")
    start = after_seq if after_seq is not None else 0
    if resume:
        try:
            start = int(resume)
        except ValueError:
            start = -1
        if not 0 <= start <= BIGINT_MAX:
            raise HQError("bad_last_event_id", "Last-Event-ID must be a seq number", status=400)
    principal = request.auth
    # The stream may last hours: give the pool back the connection that authenticated it.
    await sync_to_async(close_old_connections)()
    token_id = principal.token.pk if principal.token else None
    response = StreamingHttpResponse(_sse(topic, max(start, 0), token_id), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def _sse(topic: str, after_seq: int, token_id: int | None):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    pending: list[dict] = []

    async def deliver(envelopes: list[dict]) -> None:
        pending.extend(envelopes)

    subscriber = EventSubscriber(layer, channel, deliver)
    relay = get_relay()
    if token_id is not None:
        relay.watch_token(token_id, channel)
    try:
        yield "retry: 3000\n\n"
        await subscriber.subscribe(topic, after_seq)
        while True:
            while pending:
                env = pending.pop(0)
                yield f"id: {env['seq']}\nevent: {env['type']}\ndata: {json.dumps(env, cls=DjangoJSONEncoder)}\n\n"
            try:
                message = await asyncio.wait_for(
                    layer.receive(channel), timeout=settings.EVENTS_SSE_PING_SECONDS
                )
            except TimeoutError:
                yield ": ping\n\n"
                continue
            if message["type"] == "token.revoked":
                revoked = {"code": "token_revoked", "message": "the token of this stream was revoked or expired"}
                yield f"event: error\ndata: {json.dumps({'error': {**revoked, 'details': None}})}\n\n"
                return
            await subscriber.on_batch(message["topic"], message["events"])
    finally:
        if token_id is not None:
            relay.unwatch_token(token_id, channel)
        await subscriber.close()


api.add_router("/events", events_router)


# --- API tokens ---------------------------------------------------------------------------------

tokens_router = Router(tags=["tokens"])


class TokenIn(Schema):
    name: str
    scopes: list[str]
    days: int | None = None


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    status: str
    created_at: str
    last_used_at: str | None
    expires_at: str | None


class TokenCreatedOut(TokenOut):
    token: str


def _token_out(token) -> dict:
    iso = lambda d: d.isoformat() if d else None  # noqa: E731
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "scopes": token.scopes,
        "status": token.status,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
        "expires_at": iso(token.expires_at),
    }


@tokens_router.get("", response=list[TokenOut])
def tokens_list(request):
    require_scope(request, "admin")
    return [_token_out(t) for t in services.tokens_for(request.auth.user)]


@tokens_router.post("", response={201: TokenCreatedOut})
def tokens_create(request, payload: TokenIn):
    """Create a token; the raw value is in this response only."""
    require_scope(request, "admin")
    token, raw = services.token_create(
        request.auth.user, name=payload.name, scopes=payload.scopes, days=payload.days
    )
    return Status(201, {**_token_out(token), "token": raw})


@tokens_router.delete("/{token_id}", response=TokenOut)
def tokens_revoke(request, token_id: DbId):
    require_scope(request, "admin")
    return _token_out(services.token_revoke(request.auth.user, token_id=token_id))


api.add_router("/tokens", tokens_router)


def discover_routers() -> None:
    """Add ``router`` from every installed app's ``api.py`` at ``/<app label>``."""
    for config in apps.get_app_configs():
        own = str(config.path).startswith(str(settings.BASE_DIR)) and ".venv" not in str(config.path)
        if not own or config.name == "juggernaut" or not find_spec_safe(f"{config.name}.api"):
            continue
        module = import_module(f"{config.name}.api")
        router = getattr(module, "router", None)
        if isinstance(router, Router):
            api.add_router(getattr(module, "PREFIX", f"/{config.label}"), router)


def find_spec_safe(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except ModuleNotFoundError:
        return False


discover_routers()
