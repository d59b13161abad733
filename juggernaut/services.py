"""Core workflows: API tokens, the first operator, event retention."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from juggernaut.db import queryset_delete_batched
from juggernaut.errors import HQError
from juggernaut.events import publish
from juggernaut.models import SCOPES, ApiToken, Event


def tokens_for(user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def token_create(user, *, name: str, scopes: list[str], days: int | None = None):
    """Create a token for ``user``; returns ``(token, raw)``. Only the hash is stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise HQError("bad_name", "a token needs a name of 1 to 100 characters", status=422)
    if days is not None and not 1 <= days <= 3650:
        raise HQError("bad_expiry", "days must be between 1 and 3650", status=422)
    if "admin" in (scopes or []) and not user.is_superuser:
        # An admin token takes over workers and sets global budgets: an admin's power, not an operator's.
        raise HQError("forbidden", "only an admin may create a token with the 'admin' scope", status=403)
    try:
        token, raw = ApiToken.generate(
            name=name, user=user, scopes=scopes, days=days or settings.API_TOKEN_DEFAULT_DAYS
        )
    except ValueError as exc:
        raise HQError("bad_scopes", str(exc), status=422, details={"allowed": list(SCOPES)}) from exc
    with transaction.atomic():
        token.save()
        publish("hq", "token_created", {"name": token.name, "prefix": token.prefix, "scopes": token.scopes})
    return token, raw


def token_revoke(user, *, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s tokens (idempotent)."""
    token = tokens_for(user).filter(pk=token_id).first()
    if token is None:
        raise HQError("not_found", f"no token {token_id}", status=404)
    if token.revoked_at is None:
        with transaction.atomic():
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            publish("hq", "token_revoked", {"name": token.name, "prefix": token.prefix})
    return token


def operator_ensure(*, username: str = "", password: str = "") -> tuple[str, str | None]:
    """Create the first operator if there is none. Returns ``(username, password-if-generated)``."""
    User = get_user_model()
    existing = User.objects.filter(is_staff=True, is_active=True).order_by("pk").first()
    if existing is not None:
        return existing.get_username(), None
    username = username or "operator"
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    user = User.objects.filter(username=username).first() or User(username=username)
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    return username, generated


def events_prune(*, days: int | None = None, keep=None) -> int:
    """Delete events older than the retention window, except topics still on screen, in batches of
    ``HQ_PRUNE_BATCH``.

    ``keep`` is a list of topics to spare; apps extend it through ``EVENT_KEEPERS`` callables that
    return the topics of objects still shown (a chat run keeps its events).
    """
    days = settings.EVENTS_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    keep_topics = set(keep or [])
    for keeper in EVENT_KEEPERS:
        keep_topics.update(keeper())
    return queryset_delete_batched(Event.objects.filter(ts__lt=cutoff).exclude(topic__in=keep_topics))


# Callables returning topics whose events must survive retention; apps append in AppConfig.ready().
EVENT_KEEPERS: list = []
