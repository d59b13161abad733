"""The Self-Heal page and its buttons (staff only): diagnose, preview a repair (its dry run), run it.

Buttons answer htmx with a flash line plus fresh fragments; the websocket sends the same fragments
(and each step as it happens) to every other open page.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from juggernaut import hq
from juggernaut.auth import actor_of, operator_required
from juggernaut.healing import action_label, registry_load
from selfheal import live, services
from selfheal.errors import SelfHealError


def _answer(request: HttpRequest, *, ok: str = "", error: str = "", extra: str = "") -> HttpResponse:
    if not request.htmx:
        return redirect("selfheal:index")
    flash = hq.render_flash(ok=ok, error=error)
    return HttpResponse(flash + extra + live.render_fragments())


def _action_name(name: str) -> str:
    _, actions = registry_load()
    if name not in actions:
        raise SelfHealError("unknown_action", f"{name} is not a registered safe action", status=404)
    return name


@operator_required
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "selfheal/index.html", live.context() | {"active": "selfheal", "oob": False})


@operator_required
@require_POST
def diagnose(request: HttpRequest) -> HttpResponse:
    execution = services.diagnose_run(actor=actor_of(request.user))
    n = len(execution.report["findings"])
    return _answer(
        request,
        ok=f"Diagnosis #{execution.pk}: {n} finding{'' if n == 1 else 's'} in {execution.duration_ms} ms.",
    )


@operator_required
@require_POST
def repair_preview(request: HttpRequest, name: str) -> HttpResponse:
    """The confirm dialog: exactly what the repair would change (a dry run)."""
    try:
        execution = services.repair_run(
            actions=[_action_name(name)], dry_run=True, actor=actor_of(request.user)
        )
    except SelfHealError as exc:
        return _answer(request, error=f"Refused: {exc.message}")
    dialog = render_to_string(
        "selfheal/_confirm.html",
        {"name": name, "label": action_label(name), "step": execution.steps[0], "oob": True},
        request=request,
    )
    return _answer(request, extra=dialog)


@operator_required
@require_POST
def repair(request: HttpRequest, name: str) -> HttpResponse:
    try:
        execution = services.repair_run(actions=[_action_name(name)], actor=actor_of(request.user))
    except SelfHealError as exc:
        return _answer(request, error=f"Refused: {exc.message}")
    outcome = services.execution_outcome(execution)
    text = f"{action_label(name)} (repair #{execution.pk}): {outcome['words']}" + (
        f": {outcome['reason']}." if outcome["reason"] else "."
    )
    closed = render_to_string("selfheal/_confirm.html", {"oob": True})
    if outcome["state"] in ("fixed", "in_progress", "nothing"):
        return _answer(request, ok=text, extra=closed)
    return _answer(request, error=text, extra=closed)
