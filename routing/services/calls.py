"""A routed completion end to end, the catalog sync, the key check and policy edits."""

import threading
import time
from collections.abc import Callable, Collection

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from juggernaut.events import publish
from routing.clients import Completion, OpenRouterClient, OpenRouterError
from routing.errors import RoutingError
from routing.models import (
    CatalogModel,
    Policy,
    RoutingState,
    Usage,
)
from routing.services.budgets import budget_reserve, usage_record
from routing.services.selection import DEFAULT_BASE_URL, TOPIC, policy_get, prompt_token_bounds, route_select


def key_required() -> None:
    if not settings.OPENROUTER_API_KEY and settings.OPENROUTER_BASE_URL.rstrip("/") == DEFAULT_BASE_URL:
        raise RoutingError(
            "not_configured",
            "No OpenRouter key: set OPENROUTER_API_KEY in the environment and restart (or point "
            "OPENROUTER_BASE_URL at an OpenAI-compatible server).",
            status=503,
        )


def completion_run(
    mode: str,
    messages: list[dict],
    *,
    tools: list[dict] | None = None,
    tool_choice=None,
    max_tokens: int | None = None,
    session: str = "",
    run: str = "",
    client: OpenRouterClient | None = None,
    on_delta: Callable[[str], None] | None = None,
    on_phase: Callable[[str, object], None] | None = None,
    avoid_models: Collection[str] = (),
    cancel: threading.Event | None = None,
) -> tuple[Usage, Completion]:
    """One routed, budgeted, recorded completion (streamed from the server; ``on_delta`` sees the text).

    ``on_phase`` follows the call: ``("selected", selection)`` once the model is chosen and its worst
    case reserved, ``("stream", stream)`` once the server answered, so a caller can show where the
    call is and ``stream.cancel()`` it from another thread (it then ends as ``model_error`` with the
    code ``cancelled``, recorded and settled like any failure).

    ``avoid_models`` go last among the policy's models (the caller's fallback after they failed).
    Setting ``cancel`` (from another thread) ends the call before the server has answered too: while
    connecting, during a retry's backoff, or while the provider queues the request.

    Raises ``RoutingError``: ``no_model_fits``, ``budget_exceeded``, or ``model_error`` after the failed
    call has been recorded and charged.
    """
    key_required()
    estimate, upper = prompt_token_bounds(messages, tools)
    selection = route_select(
        mode,
        prompt_tokens=estimate,
        prompt_tokens_max=upper,
        max_tokens=max_tokens,
        needs_tools=bool(tools),
        avoid_models=avoid_models,
    )
    reservation = budget_reserve(selection, session=session, run=run)
    client = client or OpenRouterClient()
    started = time.monotonic()
    completion: Completion | None = None
    error: OpenRouterError | None = None
    try:
        if on_phase is not None:
            on_phase("selected", selection)
        body = selection.body(messages, tools=tools, tool_choice=tool_choice)
        stream = client.chat_stream(body, cancel=cancel)
        completion = stream.completion
        if on_phase is not None:
            on_phase("stream", stream)
        for piece in stream:
            if on_delta is not None:
                on_delta(piece)
    except OpenRouterError as exc:
        error = exc
    except BaseException as exc:  # the caller went away mid-stream: still settle the reservation
        usage_record(
            reservation,
            selection,
            completion,
            error=OpenRouterError("aborted", str(exc)[:200]),
            latency=time.monotonic() - started,
            client=client,
        )
        raise
    record = usage_record(
        reservation, selection, completion, error=error, latency=time.monotonic() - started, client=client
    )
    failure = error or (completion.error if completion else None)
    if failure is not None:
        raise RoutingError(
            "model_error",
            f"The model call failed: {failure}",
            status=502,
            details={
                "code": failure.code,
                "retryable": not failure.permanent,
                "retry_after": failure.retry_after,
                "usage_id": record.pk,
            },
        )
    return record, completion


def catalog_sync(*, client: OpenRouterClient | None = None) -> int:
    """Replace the catalog with ``GET /models`` (entries gone from the list are dropped); returns the count.
    A failure is kept on the state row for the page and raised as ``model_error``."""
    state = RoutingState.load()
    try:
        entries = (client or OpenRouterClient()).models()
    except OpenRouterError as exc:
        RoutingState.objects.filter(pk=state.pk).update(sync_error=str(exc)[:300])
        raise RoutingError("model_error", f"The model list could not be fetched: {exc}", status=502) from exc
    now = timezone.now()
    with transaction.atomic():
        CatalogModel.objects.exclude(model_id__in=[e.id for e in entries]).delete()
        CatalogModel.objects.bulk_create(
            [
                CatalogModel(
                    model_id=e.id,
                    name=e.name,
                    context_length=e.context_length,
                    prompt_price=e.prompt_price,
                    completion_price=e.completion_price,
                    supported_parameters=e.supported_parameters,
                    max_completion_tokens=e.max_completion_tokens,
                    source="sync",
                    synced_at=now,
                )
                for e in entries
            ],
            update_conflicts=True,
            unique_fields=["model_id"],
            update_fields=[
                "name",
                "context_length",
                "prompt_price",
                "completion_price",
                "supported_parameters",
                "max_completion_tokens",
                "source",
                "synced_at",
            ],
        )
        RoutingState.objects.filter(pk=state.pk).update(
            models_synced_at=now, models_count=len(entries), sync_error=""
        )
        publish(TOPIC, "catalog_synced", {"models": len(entries), "message": f"{len(entries)} models synced"})
    return len(entries)


def key_check(*, client: OpenRouterClient | None = None) -> RoutingState:
    """Ask ``GET /key`` for the key's limit, remaining credit and usage, and keep the answer (or the error)."""
    state = RoutingState.load()
    fields: dict = {"key_checked_at": timezone.now()}
    try:
        key_required()
        info = (client or OpenRouterClient()).key()
        fields.update(
            key_label=info.label[:200],
            key_limit=info.limit,
            key_remaining=info.remaining,
            key_usage=info.usage,
            key_error="",
        )
    except (OpenRouterError, RoutingError) as exc:
        fields["key_error"] = str(getattr(exc, "message", exc))[:300]
    with transaction.atomic():
        RoutingState.objects.filter(pk=state.pk).update(**fields)
        ok = not fields.get("key_error")
        publish(TOPIC, "key_checked", {"ok": ok, "message": "key accepted" if ok else "key refused"})
    return RoutingState.load()


POLICY_FIELDS = [
    "model",
    "fallback_models",
    "max_price_per_1k",
    "max_context_tokens",
    "max_iterations",
    "max_output_tokens",
    "sort",
    "allow_fallbacks",
    "require_parameters",
]


def policy_update(mode: str, **changes) -> Policy:
    """Change a policy; refused with ``bad_policy`` (every problem in one sentence) when its models
    would break its own caps or are unknown."""
    policy = policy_get(mode)
    for name, value in changes.items():
        if name not in POLICY_FIELDS:
            raise RoutingError("bad_policy", f"unknown policy field {name}", status=422)
        setattr(policy, name, value)
    try:
        policy.full_clean()
    except ValidationError as exc:
        raise RoutingError(
            "bad_policy",
            " ".join(exc.messages),
            status=422,
            details=exc.message_dict if hasattr(exc, "error_dict") else None,
        ) from exc
    with transaction.atomic():
        policy.save()
        publish(TOPIC, "policy_updated", {"mode": mode, "message": f"policy {mode} changed"})
    return policy
