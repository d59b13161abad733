"""The System Health page, a fingerprint's detail and the operator's actions on it (staff only).

Actions answer htmx with a flash line plus fresh fragments; without htmx they redirect back with a
message. The websocket sends the same fragments to every other open page.
"""

from datetime import timedelta

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from juggernaut import hq
from juggernaut.auth import actor_of, operator_required
from juggernaut.charts import Series, chart_build
from logscrawler import live, services
from logscrawler.alerts import task_for_fingerprint
from logscrawler.errors import LogsError
from logscrawler.models import ErrorFingerprint, ErrorMinute

CHART_HOURS = 24


def _fingerprint(pk: int) -> ErrorFingerprint:
    fingerprint = (
        ErrorFingerprint.objects.select_related("service", "task", "merged_into").filter(pk=pk).first()
    )
    if fingerprint is None:
        raise Http404(f"no fingerprint {pk}")
    return fingerprint


@operator_required
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "logscrawler/index.html", {**live.context(), "active": "logs", "oob": False})


def _chart(fingerprint: ErrorFingerprint, now) -> dict:
    """Occurrences per hour over the last day, in the HQ's one chart component."""
    start = (now - timedelta(hours=CHART_HOURS - 1)).replace(minute=0, second=0, microsecond=0)
    hours = [0] * CHART_HOURS
    for minute, count in ErrorMinute.objects.filter(fingerprint=fingerprint, minute__gte=start).values_list(
        "minute", "count"
    ):
        hours[min(int((minute - start).total_seconds() // 3600), CHART_HOURS - 1)] += count
    labels = [(start + timedelta(hours=i)).strftime("%H:00") for i in range(CHART_HOURS)]
    return chart_build(
        "Occurrences per hour, last 24 hours (UTC)",
        labels=labels,
        series=[Series("occurrences", "per hour", hours)],
    )


@operator_required
def fingerprint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    fingerprint = _fingerprint(pk)
    now = timezone.now()
    samples = fingerprint.occurrences.select_related("line").order_by("-timestamp")[:10]
    ctx = {
        "fp": fingerprint,
        "samples": samples,
        "chart": _chart(fingerprint, now),
        "now": now,
        "active": "logs",
        "live_page": live.detail_page(fingerprint.pk),
        "oob": False,
    }
    return render(request, "logscrawler/fingerprint.html", ctx)


@operator_required
@require_POST
def service_add(request: HttpRequest) -> HttpResponse:
    """System Health's "Add service": a service whose pushed lines ingest then accepts."""
    try:
        service = services.service_create(request.POST.get("name", ""))
        messages.success(request, f"Service {service.name!r} added: POST its lines to /api/logs/ingest.")
    except LogsError as exc:
        messages.error(request, f"Refused: {exc.message}")
    return redirect("logs:index")


@operator_required
@require_POST
def fingerprint_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """acknowledge, resolve, ignore, or task (open the investigation task)."""
    fingerprint = _fingerprint(pk)
    error = None
    try:
        if action == "task":
            task_id = task_for_fingerprint(fingerprint, "operator request")
            text = f"Task #{task_id} is open for this error."
        else:
            services.fingerprint_set_status(fingerprint, action, actor=actor_of(request.user))
            text = f"Error #{fingerprint.pk} marked {fingerprint.get_status_display().lower()}."
    except LogsError as exc:
        error, text = exc, f"Refused: {exc.message}"
    if not request.htmx or request.POST.get("page") != "logs":
        (messages.error if error else messages.success)(request, text)
        if not request.htmx:
            return redirect("logs:fingerprint", pk=fingerprint.pk)
        response = HttpResponse("")  # the detail page has no live fragments: reload it
        response["HX-Refresh"] = "true"
        return response
    # htmx swaps nothing on a 4xx, so a refusal is a 200 whose flash says why.
    flash = hq.render_flash(ok=None if error else text, error=text if error else None)
    return HttpResponse(flash + live.render_fragments())
