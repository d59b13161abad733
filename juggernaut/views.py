"""HQ pages: plain function views, staff only."""

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

import juggernaut
from juggernaut import hq, services
from juggernaut.auth import operator_required, session_principal
from juggernaut.errors import HQError
from juggernaut.models import SCOPES


def hq_context(request: HttpRequest) -> dict:
    """Navigation for every page (a context processor)."""
    if session_principal(getattr(request, "user", None)) is None:
        return {}
    nav = [{"key": "overview", "label": "Overview", "url": "/"}]
    nav += [{"key": a.key, "label": a.label, "url": a.url} for a in hq.areas_navigation()]
    return {"hq_nav": nav, "hq_version": juggernaut.__version__}


@operator_required
def overview(request: HttpRequest) -> HttpResponse:
    ctx = {"areas": hq.areas_context(request.user), "events": hq.recent_activity(), "active": "overview"}
    return render(request, "juggernaut/overview.html", ctx)


@operator_required
def area(request: HttpRequest, key: str) -> HttpResponse:
    """The page of an area whose app has not registered a page of its own yet."""
    found = hq.AREAS.get(key)
    if found is None:
        raise Http404("no such area")
    return render(
        request, "juggernaut/area.html", {"area": found, "status": found.status(request.user), "active": key}
    )


@operator_required
def settings_page(request: HttpRequest) -> HttpResponse:
    ctx = {
        "tokens": services.tokens_for(request.user),
        # Only an admin may mint an admin token; the service refuses a forged form all the same.
        "scopes": [s for s in SCOPES if s != "admin" or request.user.is_superuser],
        "new_token": request.session.pop("new_token", None),
        "active": "settings",
    }
    return render(request, "juggernaut/settings.html", ctx)


@operator_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    days = request.POST.get("days", "").strip()
    try:
        _token, raw = services.token_create(
            request.user,
            name=request.POST.get("name", ""),
            scopes=request.POST.getlist("scopes"),
            days=int(days) if days.isdigit() else None,
        )
    except HQError as exc:
        messages.error(request, exc.message)
        return redirect("settings")
    # Shown once on the next page, then gone from the session.
    request.session["new_token"] = raw
    return redirect("settings")


@operator_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = services.token_revoke(request.user, token_id=token_id)
    except HQError as exc:
        raise Http404(exc.message) from exc
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("settings")


def signin_locked(request: HttpRequest, credentials: dict | None = None, *args, **kwargs) -> HttpResponse:
    """The page django-axes shows on /login/ and /admin/login/ once a user name is locked out."""
    ctx = {
        "username": (credentials or {}).get("username") or request.POST.get("username", ""),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "name_limit": settings.HQ_LOGIN_NAME_FAILURE_LIMIT,
        "minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
    }
    return render(request, "registration/locked_out.html", ctx, status=429)
