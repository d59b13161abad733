"""Who is calling: a signed-in staff session or a hashed bearer token with scopes.

The API, the SSE stream and the websockets all resolve the caller here, so the rules are one rule.
"""

from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import is_same_domain
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from juggernaut.errors import HQError
from juggernaut.models import ApiToken, hash_token

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. ``token`` is None for a browser session (which holds every scope)."""

    user: object
    token: ApiToken | None = None

    def has_scope(self, scope: str) -> bool:
        return self.token is None or self.token.has_scope(scope)

    @property
    def is_admin(self) -> bool:
        """An admin acting as one: a superuser's session, or a superuser's ``admin`` token. A staff
        operator's session holds every scope, but never an admin's powers (taking over a worker, global
        and per-mode budgets)."""
        return bool(getattr(self.user, "is_superuser", False)) and self.has_scope("admin")

    @property
    def actor(self) -> str:
        """This caller as history rows and events name it."""
        return actor_of(self.user, self.token)


def actor_of(user, token: ApiToken | None = None) -> str:
    """The one way history rows and events name a person who acted: ``operator:alice``, or
    ``operator:alice (token deploy-bot)`` when a token acted for them."""
    name = user.get_username()
    return f"operator:{name}" + (f" (token {token.name})" if token else "")


def token_authenticate(raw: str) -> Principal | None:
    """Resolve a raw bearer token; revoked, expired or unknown tokens, and tokens whose owner is no
    longer an active operator, resolve to None."""
    if not raw or len(raw) > 200:
        return None
    token = ApiToken.objects.usable().select_related("user").filter(key_hash=hash_token(raw)).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return Principal(user=token.user, token=token)


def session_principal(user) -> Principal | None:
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        return Principal(user=user)
    return None


def require_scope(request: HttpRequest, scope: str) -> Principal:
    principal: Principal = request.auth  # type: ignore[attr-defined]
    if not principal.has_scope(scope):
        raise HQError("forbidden", f"this token lacks the '{scope}' scope", status=403)
    return principal


class SessionStaffAuth(APIKeyCookie):
    """Django session of a staff user, with Django's CSRF check on unsafe methods.

    The check runs only for a signed-in user, so an anonymous caller gets 401, not a CSRF 403.
    """

    param_name = settings.SESSION_COOKIE_NAME

    def __call__(self, request: HttpRequest) -> Principal | None:
        principal = session_principal(getattr(request, "user", None))
        exempt = not self.csrf or getattr(request, "_ninja_csrf_exempt", False)
        if principal is not None and not exempt and check_csrf(request):
            raise HQError("csrf_failed", "CSRF check failed: send the X-CSRFToken header", status=403)
        return principal

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        return session_principal(getattr(request, "user", None))


class BearerTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        return token_authenticate(token)


api_auth = [BearerTokenAuth(), SessionStaffAuth()]


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of an origin, the port made explicit; None when it is not one."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port


def origin_allowed(origin: str | None, host: str | None = None, scheme: str = "http") -> bool:
    """Browsers send Origin on websockets and SSE; it must be this site itself (the request's scheme,
    host and port) or one of CSRF_TRUSTED_ORIGINS, compared on scheme, host and port alike, as Django
    compares them for CSRF. ``http://localhost:3000`` is not ``http://localhost:8000``."""
    if not origin:
        return True  # not a browser: a token or session still has to authenticate
    theirs = _origin(origin)
    if theirs is None:
        return False
    allowed = list(settings.CSRF_TRUSTED_ORIGINS)
    if host:
        allowed.append(f"{scheme}://{host}")
    for candidate in allowed:
        wildcard = "://*." in candidate  # CSRF_TRUSTED_ORIGINS' subdomain form, https://*.example.com
        ours = _origin(candidate.replace("://*.", "://", 1))
        if ours is None or (ours[0], ours[2]) != (theirs[0], theirs[2]):
            continue
        if theirs[1] == ours[1] or (wildcard and is_same_domain(theirs[1], "." + ours[1])):
            return True
    return False


class WebsocketAuthMiddleware:
    """Resolve ``scope["principal"]`` from the session user or a bearer token (header or ``?token=``).

    Wraps Channels' ``AuthMiddlewareStack``, so ``scope["user"]`` is already the session user.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            headers = dict(scope.get("headers") or [])
            origin = headers.get(b"origin", b"").decode("latin-1") or None
            host = headers.get(b"host", b"").decode("latin-1") or None
            allowed = origin_allowed(origin, host, _ws_scheme(scope, headers))
            principal = await _ws_principal(scope, headers) if allowed else None
            scope = dict(scope, principal=principal)
        return await self.app(scope, receive, send)


def _ws_scheme(scope, headers: dict) -> str:
    """The scheme a browser used for this websocket, as ``request.scheme`` would say it: daphne leaves
    it out of the scope, and behind a TLS-terminating proxy only SECURE_PROXY_SSL_HEADER tells."""
    if scope.get("scheme") in ("wss", "https"):
        return "https"
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        if headers.get(name, b"").decode("latin-1").split(",")[0].strip() == proxy[1]:
            return "https"
    return "http"


@database_sync_to_async
def _ws_principal(scope, headers) -> Principal | None:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    raw = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    if not raw:
        raw = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0]
    if raw:
        return token_authenticate(raw)
    return session_principal(scope.get("user") or AnonymousUser())


def operator_required(view):
    """Every HQ page: a signed-in, active staff user. Anyone else signed in gets a 403 page that says
    why (not a redirect to sign-in, which would send them straight back); anonymous users sign in."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        if session_principal(request.user) is not None:
            return view(request, *args, **kwargs)
        if request.user.is_authenticated:
            return not_an_operator(request)
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)

    return wrapped


def not_an_operator(request: HttpRequest) -> HttpResponse:
    ctx = {
        "status": 403,
        "title": "This account is not an operator",
        "message": "The HQ is for operators (staff accounts) only.",
        "signed_in_as": request.user.get_username(),
    }
    return render(request, "juggernaut/error.html", ctx, status=403)


def docs_access(view):
    """The API schema and docs: a ``read`` token or an operator session; anyone else gets the API's
    401 (or 403) in the error shape, never the HTML sign-in page."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        principal = session_principal(request.user)
        header = request.headers.get("Authorization", "")
        if principal is None and header.lower().startswith("bearer "):
            principal = token_authenticate(header[7:].strip())
        if principal is None:
            response = JsonResponse(
                HQError("unauthorized", "sign in, or send a valid bearer token", status=401).as_dict(),
                status=401,
            )
            response["WWW-Authenticate"] = "Bearer"
            return response
        if not principal.has_scope("read"):
            refusal = HQError("forbidden", "this token lacks the 'read' scope", status=403)
            return JsonResponse(refusal.as_dict(), status=403)
        return view(request, *args, **kwargs)

    return wrapped


def signin_lockout_parameters(request_or_attempt, credentials: dict | None = None) -> list:
    """What django-axes counts failed sign-ins by (``AXES_LOCKOUT_PARAMETERS``).

    A user name is locked out from one address after AXES_FAILURE_LIMIT wrong passwords from there
    (name and address together), so one bad actor behind a shared proxy locks out neither everyone
    behind it nor the real owner of the name signing in from elsewhere. Guessing spread over many
    addresses is stopped too: once a name has failed HQ_LOGIN_NAME_FAILURE_LIMIT times in all within
    the cool-off, it is locked out from everywhere.
    """
    from axes.helpers import get_client_username
    from axes.models import AccessAttempt

    if isinstance(request_or_attempt, HttpRequest):
        username = get_client_username(request_or_attempt, credentials)
    else:
        username = getattr(request_or_attempt, "username", None)
    if username:
        failures = AccessAttempt.objects.filter(
            username=username, attempt_time__gte=timezone.now() - settings.AXES_COOLOFF_TIME
        ).aggregate(n=Sum("failures_since_start"))["n"]
        if (failures or 0) >= settings.HQ_LOGIN_NAME_FAILURE_LIMIT:
            return ["username"]
    return [["username", "ip_address"]]
