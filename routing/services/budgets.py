"""Budgets: reserve a call's worst case on its locked rollup rows, record what it really cost, set limits."""

import logging
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from juggernaut.events import publish
from routing.clients import Completion, OpenRouterClient, OpenRouterError
from routing.errors import RoutingError
from routing.models import (
    CANCELLED,
    REFUSED,
    Budget,
    CatalogModel,
    CostTracking,
    Period,
    Reservation,
    Scope,
    Usage,
    period_start,
)
from routing.services.selection import TOPIC, Selection, policy_get, usd

log = logging.getLogger(__name__)

CENT_FRACTION = Decimal("0.0000000001")


def _rollup_keys(mode: str, session: str, now) -> list[tuple[str, object, str, str]]:
    keys = []
    for period in Period.values:
        start = period_start(period, now)
        keys += [(period, start, "", ""), (period, start, mode, "")]
        if session:
            keys.append((period, start, "", session))
    return keys


def _rollups(keys, *, lock: bool = False) -> dict[tuple, CostTracking]:
    """The existing rollup rows for ``keys``; with ``lock``, locked in id order (every locker takes
    them in the same order, so no deadlocks). A few neighbouring rows may be locked too; no harm."""
    rows = CostTracking.objects.filter(
        period_start__in={k[1] for k in keys}, mode__in={k[2] for k in keys}, session__in={k[3] for k in keys}
    )
    if lock:
        rows = rows.select_for_update().order_by("pk")
    wanted = set(keys)
    return {key: r for r in rows if (key := (r.period, r.period_start, r.mode, r.session)) in wanted}


def _rollups_ensure(keys) -> None:
    """Create missing rollup rows (in key order, so concurrent creators queue instead of deadlocking).
    Most calls find them all and write nothing here."""
    if len(_rollups(keys)) == len(keys):
        return
    CostTracking.objects.bulk_create(
        [CostTracking(period=p, period_start=s, mode=m, session=x) for p, s, m, x in sorted(keys, key=str)],
        ignore_conflicts=True,
    )


def _budgets_for(mode: str, session: str):
    query = Q(scope=Scope.GLOBAL) | Q(scope=Scope.MODE, mode=mode)
    if session:
        query |= Q(scope=Scope.SESSION, session=session)
    return list(Budget.objects.filter(query))


def _room(budgets: list[Budget], rows: dict, now) -> tuple[Decimal | None, Budget | None]:
    """What is left under the tightest budget, and that budget (None, None without budgets)."""
    tightest: tuple[Decimal | None, Budget | None] = (None, None)
    for b in budgets:
        row = rows[(b.period, period_start(b.period, now), *b.key)]
        left = b.limit_usd - row.committed_usd
        if tightest[0] is None or left < tightest[0]:
            tightest = (left, b)
    return tightest


def budget_reserve(selection: Selection, *, session: str = "", run: str = "", now=None) -> Reservation:
    """Hold the call's worst case on its rollup rows, or refuse with ``budget_exceeded``.

    A call that does not fit with its ``max_tokens`` but would with fewer, still at least
    ROUTING_MIN_USEFUL_TOKENS, gets ``selection.max_tokens`` lowered instead of a refusal.
    """
    now = now or timezone.now()
    mode = selection.policy.mode
    keys = _rollup_keys(mode, session, now)
    refused: dict | None = None
    _rollups_ensure(keys)  # outside the locking transaction, so it holds no insert locks
    with transaction.atomic():
        rows = _rollups(keys, lock=True)
        room, tightest = _room(_budgets_for(mode, session), rows, now)
        worst = selection.worst_case()
        if room is not None and worst > room:
            prompt_part = selection.worst_case(0)
            fit = int((room - prompt_part) / selection.completion_price) if selection.completion_price else 0
            if selection.completion_price and fit >= min(
                settings.ROUTING_MIN_USEFUL_TOKENS, selection.max_tokens
            ):
                selection.max_tokens = fit
                selection.reason += f"; max_tokens lowered to {fit:,} to fit {tightest.label}"
                worst = selection.worst_case()
            else:
                refused = {
                    "budget": tightest.label,
                    "left_usd": str(max(room, Decimal(0))),
                    "needed_usd": str(worst),
                }
        if refused is None:
            ids = [r.pk for r in rows.values()]
            CostTracking.objects.filter(pk__in=ids).update(reserved_usd=F("reserved_usd") + worst)
            return Reservation.objects.create(
                created_at=now,
                mode=mode,
                session=session,
                run=run,
                model=selection.model,
                amount_usd=worst,
                prompt_tokens_max=selection.prompt_tokens_max,
                max_tokens=selection.max_tokens,
                rollups=ids,
            )
    message = (
        f"Budget exceeded: the {refused['budget']} has {usd(Decimal(refused['left_usd']))} left, and this call "
        f"could cost up to {usd(Decimal(refused['needed_usd']))}."
    )
    with transaction.atomic():
        # Listed with the calls (Recent calls), though it was never made and costs nothing.
        Usage.objects.create(
            created_at=now,
            session=session,
            run=run,
            mode=mode,
            model_requested=selection.model,
            max_tokens=selection.max_tokens,
            cost_source=Usage.CostSource.NONE,
            error_code=REFUSED,
            error=message,
            reason=selection.reason[:2000],
        )
        publish(TOPIC, "budget_refused", {"mode": mode, "session": session, **refused, "message": message})
    raise RoutingError("budget_exceeded", message, status=402, details=refused)


def _actual_cost(
    completion: Completion | None, reservation: Reservation, client: OpenRouterClient | None
) -> tuple[Decimal, str]:
    """What the call cost and how we know: the usage chunk, the generation's stats, tokens × price, or
    (when nothing says) the whole reservation."""
    if completion is None:
        return Decimal(0), Usage.CostSource.NONE
    usage = completion.usage
    if usage is not None and usage.cost is not None:
        return usage.cost, Usage.CostSource.USAGE
    if completion.id and client is not None and usage is None:
        try:
            stats = client.generation(completion.id)
            if stats.get("total_cost") is not None:
                return Decimal(str(stats["total_cost"])), Usage.CostSource.GENERATION
        except OpenRouterError as exc:
            log.info("no generation stats for %s: %s", completion.id, exc)
    if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
        entry = CatalogModel.objects.lookup([completion.model or reservation.model]).get(
            completion.model or reservation.model
        )
        if entry is not None and entry.priced:
            return (
                usage.prompt_tokens * entry.prompt_price + usage.completion_tokens * entry.completion_price,
                Usage.CostSource.TOKENS,
            )
    return reservation.amount_usd, Usage.CostSource.RESERVATION


def usage_record(
    reservation: Reservation,
    selection: Selection | None,
    completion: Completion | None,
    *,
    error: OpenRouterError | None = None,
    latency: float = 0.0,
    client: OpenRouterClient | None = None,
    now=None,
) -> Usage:
    """Settle a reservation at the call's actual cost, record the call, update the rollups and tell the
    page. ``completion`` is None when the call failed before any answer (nothing is charged then)."""
    now = now or timezone.now()
    cost, source = _actual_cost(completion, reservation, client)
    cost = cost.quantize(CENT_FRACTION, rounding=ROUND_HALF_UP)
    error = error or (completion.error if completion else None)
    usage = completion.usage if completion else None
    crossed: list[dict] = []
    with transaction.atomic():
        settled = Reservation.objects.filter(pk=reservation.pk, settled_at__isnull=True).update(
            settled_at=now
        )
        if settled != 1:
            raise RoutingError(
                "already_settled", f"reservation {reservation.pk} was already recorded", status=409
            )
        rows = {
            r.pk: r
            for r in CostTracking.objects.select_for_update()
            .filter(pk__in=reservation.rollups)
            .order_by("pk")
        }
        CostTracking.objects.filter(pk__in=list(rows)).update(
            reserved_usd=F("reserved_usd") - reservation.amount_usd,
            cost_usd=F("cost_usd") + cost,
            calls=F("calls") + 1,
            errors=F("errors") + (1 if error and error.code != CANCELLED else 0),
            prompt_tokens=F("prompt_tokens") + (usage.prompt_tokens if usage else 0),
            completion_tokens=F("completion_tokens") + (usage.completion_tokens if usage else 0),
        )
        by_key = {(r.period, r.period_start, r.mode, r.session): r for r in rows.values()}
        for b in _budgets_for(reservation.mode, reservation.session):
            row = by_key.get((b.period, period_start(b.period, reservation.created_at), *b.key))
            if row is None:
                continue
            before, after = row.cost_usd, row.cost_usd + cost
            for level, limit in (("soft", b.soft_limit_usd), ("limit", b.limit_usd)):
                if limit is not None and before < limit <= after:
                    crossed.append(
                        {"budget": b.label, "level": level, "limit_usd": str(limit), "spent_usd": str(after)}
                    )
        record = Usage.objects.create(
            created_at=now,
            session=reservation.session,
            run=reservation.run,
            mode=reservation.mode,
            model_requested=selection.model if selection else reservation.model,
            model_used=(completion.model if completion else "") or "",
            provider=(completion.provider if completion else "")[:100],
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            max_tokens=reservation.max_tokens,
            cost_usd=cost,
            cost_source=source,
            reserved_usd=reservation.amount_usd,
            latency_ms=int(latency * 1000),
            ttft_ms=int(completion.first_token_seconds * 1000)
            if completion and completion.first_token_seconds
            else None,
            finish_reason=(completion.finish_reason if completion else "error") or "",
            native_finish_reason=(completion.native_finish_reason if completion else "") or "",
            generation_id=(completion.id if completion else "")[:200],
            error_code=error.code[:60] if error else "",
            error=error.message[:2000] if error else "",
            reason=selection.reason[:2000] if selection else "",
        )
        publish(TOPIC, "call", usage_event(record))
        for c in crossed:
            publish(
                TOPIC,
                "budget_threshold",
                {**c, "message": f"{c['budget']}: {c['level']} of {usd(Decimal(c['limit_usd']))} reached"},
            )
    return record


def usage_event(u: Usage) -> dict:
    model = u.model_used or u.model_requested
    outcome = {
        "failed": f"failed ({u.error_code})",
        "cancelled": f"cancelled (stopped), {u.prompt_tokens} in / {u.completion_tokens} out",
    }.get(u.outcome, f"{u.prompt_tokens} in / {u.completion_tokens} out")
    return {
        "id": u.pk,
        "mode": u.mode,
        "model": model,
        "cost_usd": str(u.cost_usd.normalize()),
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "finish_reason": u.finish_reason,
        "error_code": u.error_code,
        "outcome": u.outcome,
        "message": f"{u.mode} → {model}: {usd(u.cost_usd)}, {outcome}",
    }


def session_of(user, name: str) -> str:
    """The routing session an operator names through the API or the page: always one of their own,
    ``<user name>/<name>``. User names hold no ``/``, so no operator can name another's session, nor a
    session the HQ names itself (a chat session's ``chat-12``): nobody spends from, or sets, a session
    budget that is not theirs."""
    prefix = f"{user.get_username()}/"
    name = (name or "").strip()
    room = Budget._meta.get_field("session").max_length - len(prefix)
    if not 1 <= len(name) <= room:
        raise RoutingError("bad_session", f"a session name is 1 to {room} characters", status=422)
    return prefix + name


def budget_set_by(user, *, admin: bool, scope: str, session: str = "", **fields) -> tuple[Budget, bool]:
    """``budget_set`` for an operator: global and per-mode budgets bound everyone's calls, so only an
    admin sets them; a session budget is always of one of the operator's own sessions."""
    if scope in (Scope.GLOBAL, Scope.MODE) and not admin:
        raise RoutingError(
            "forbidden",
            "only an admin sets global and per-mode budgets; set a budget of one of your own sessions",
            status=403,
        )
    if scope == Scope.SESSION:
        session = session_of(user, session)
    return budget_set(scope=scope, session=session, **fields)


def budget_set(
    *,
    scope: str,
    period: str,
    limit_usd: Decimal,
    soft_limit_usd: Decimal | None = None,
    mode: str = "",
    session: str = "",
    announce: bool = True,
) -> tuple[Budget, bool]:
    """Create or update the budget of one scope and period; returns ``(budget, created)``.
    ``announce=False`` for a budget the HQ sets itself at every run (a chat run's cost limit): the
    activity feed is for what people decide, not for that routine."""
    if scope not in Scope.values or period not in Period.values:
        raise RoutingError(
            "bad_budget", "scope is global, mode or session; period is day, month or total", status=422
        )
    mode, session = (mode or "").strip(), (session or "").strip()
    if scope == Scope.MODE:
        policy_get(mode)
    if scope == Scope.SESSION and not session:
        raise RoutingError("bad_budget", "a session budget needs a session", status=422)
    if limit_usd < 0 or (soft_limit_usd is not None and not 0 <= soft_limit_usd <= limit_usd):
        raise RoutingError(
            "bad_budget", "limits are at least 0, and the soft limit is not above the limit", status=422
        )
    key = {
        "scope": scope,
        "period": period,
        "mode": mode if scope == Scope.MODE else "",
        "session": session if scope == Scope.SESSION else "",
    }
    with transaction.atomic():
        budget, created = Budget.objects.update_or_create(
            **key, defaults={"limit_usd": limit_usd, "soft_limit_usd": soft_limit_usd}
        )
        if announce:
            publish(
                TOPIC,
                "budget_set",
                {
                    "budget": budget.label,
                    "limit_usd": str(limit_usd),
                    "message": f"{budget.label} set to {usd(limit_usd)}",
                },
            )
    return budget, created


def reservations_expire(*, older_than: timedelta = timedelta(hours=1), now=None) -> int:
    """Settle reservations whose call never reported back (its process died): they are charged in full,
    since the call may have run to its end, and stop holding the budget."""
    now = now or timezone.now()
    stale = Reservation.objects.filter(settled_at__isnull=True, created_at__lt=now - older_than)
    count = 0
    for reservation in stale:
        try:
            usage_record(
                reservation,
                None,
                Completion(),
                now=now,
                error=OpenRouterError("abandoned", "the call never reported back; charged its reservation"),
            )
            count += 1
        except RoutingError:
            continue  # settled meanwhile by its own call
    return count
