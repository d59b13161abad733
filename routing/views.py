"""The Routing & Costs page and its operator actions: plain function views, staff only.

Actions answer htmx with a flash line plus fresh fragments; without htmx they redirect back with a
message. The websocket sends the same fragments to every other open page.
"""

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from juggernaut.auth import operator_required
from routing import live, services
from routing.errors import RoutingError


def _answer(
    request: HttpRequest, *, ok: str | None = None, error: RoutingError | None = None
) -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error.message)
        elif ok:
            messages.success(request, ok)
        return redirect("routing:index")
    # htmx swaps nothing on a 4xx, so a refusal is a 200 whose flash says why; the JSON API gives the 4xx.
    flash = render_to_string("routing/_flash.html", {"ok": ok, "error": error, "oob": True})
    return HttpResponse(flash + live.render_fragments())


def _money(raw: str, name: str, *, required: bool = True) -> Decimal | None:
    raw = (raw or "").strip().lstrip("$")
    if not raw and not required:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise RoutingError(
            "bad_input", f"{name} must be an amount in USD, like 5 or 0.25", status=422
        ) from exc
    if not value.is_finite() or value < 0 or value > Decimal("1000000"):
        raise RoutingError("bad_input", f"{name} must be between 0 and 1,000,000 USD", status=422)
    return value


def _count(raw: str, name: str) -> int:
    try:
        value = int((raw or "").strip())
    except ValueError as exc:
        raise RoutingError("bad_input", f"{name} must be a whole number", status=422) from exc
    if not 1 <= value <= 10_000_000:
        raise RoutingError("bad_input", f"{name} must be between 1 and 10,000,000", status=422)
    return value


@operator_required
def index(request: HttpRequest) -> HttpResponse:
    ctx = {**live.context(), "active": "routing", "oob": False}
    return render(request, "routing/index.html", ctx)


@operator_required
@require_POST
def policy_edit(request: HttpRequest, mode: str) -> HttpResponse:
    data = request.POST
    try:
        policy = services.policy_update(
            mode,
            model=data.get("model", "").strip(),
            fallback_models=[m.strip() for m in data.get("fallback_models", "").split(",") if m.strip()],
            max_price_per_1k=_money(data.get("max_price_per_1k", ""), "The price cap"),
            max_context_tokens=_count(data.get("max_context_tokens", ""), "The context limit"),
            max_iterations=_count(data.get("max_iterations", ""), "Iterations"),
            max_output_tokens=_count(data.get("max_output_tokens", ""), "Max output tokens"),
        )
    except RoutingError as exc:
        return _answer(request, error=exc)
    return _answer(request, ok=f"Policy {policy.mode} saved.")


@operator_required
@require_POST
def budget_edit(request: HttpRequest) -> HttpResponse:
    data = request.POST
    try:
        budget, created = services.budget_set_by(
            request.user,
            admin=request.user.is_superuser,
            scope=data.get("scope", ""),
            period=data.get("period", ""),
            mode=data.get("mode", ""),
            session=data.get("session", ""),
            limit_usd=_money(data.get("limit_usd", ""), "The limit"),
            soft_limit_usd=_money(data.get("soft_limit_usd", ""), "The soft limit", required=False),
        )
    except RoutingError as exc:
        return _answer(request, error=exc)
    label = budget.label[0].upper() + budget.label[1:]
    return _answer(
        request, ok=f"{label} {'set' if created else 'changed'} to {services.usd(budget.limit_usd)}."
    )


@operator_required
@require_POST
def catalog_sync(request: HttpRequest) -> HttpResponse:
    try:
        count = services.catalog_sync()
    except RoutingError as exc:
        return _answer(request, error=exc)
    services.key_check()
    return _answer(request, ok=f"Model catalog synced: {count} models.")


@operator_required
@require_POST
def key_check(request: HttpRequest) -> HttpResponse:
    state = services.key_check()
    if state.key_error:
        return _answer(request, error=RoutingError("key_refused", state.key_error))
    return _answer(request, ok="Key checked.")
