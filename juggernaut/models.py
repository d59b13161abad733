import hashlib
import secrets
from datetime import timedelta
from typing import Self

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class SingleRow(models.Model):
    """A table of exactly one row, primary key 1: state or settings the whole HQ shares.

    ``load()`` returns the row, creating it with its defaults on first use; ``peek()`` returns it or
    None without writing (for readers that fall back to settings); ``save()`` always writes row 1, so a
    second row cannot appear through the ORM or the admin. The base adds no field: each table keeps
    its own primary key column and constraints.
    """

    PK = 1

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        self.pk = self.PK
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> Self:
        row, _ = cls.objects.get_or_create(pk=cls.PK)
        return row

    @classmethod
    def peek(cls) -> Self | None:
        return cls.objects.filter(pk=cls.PK).first()


class EventTopic(models.Model):
    """The per-topic sequence counter.

    ``publish()`` bumps ``last_seq`` in the caller's transaction; the row lock it takes serialises
    producers of one topic until they commit, so sequence numbers have no gaps and become visible in
    order. Relays poll this table for the topics they watch instead of tailing event ids.
    """

    topic = models.CharField(max_length=120, primary_key=True)
    last_seq = models.BigIntegerField(default=0)

    class Meta:
        db_table = "event_topics"

    def __str__(self) -> str:
        return f"{self.topic} @ {self.last_seq}"


class EventQuerySet(models.QuerySet):
    def after(self, topic: str, seq: int) -> "EventQuerySet":
        return self.filter(topic=topic, seq__gt=seq).order_by("seq")


class Event(models.Model):
    """One entry of the live event log (see docs/architecture.md)."""

    topic = models.CharField(max_length=120)
    seq = models.BigIntegerField()
    type = models.CharField(max_length=64)
    ts = models.DateTimeField(default=timezone.now)
    # The unit of work the event belongs to, as its producer numbers it (a chat run's id); the
    # envelope sends it as ``run_id``, the key the event contract has always had.
    correlation_id = models.BigIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)

    objects = EventQuerySet.as_manager()

    class Meta:
        db_table = "events"
        constraints = [models.UniqueConstraint(fields=["topic", "seq"], name="events_topic_seq_uniq")]
        # The daily retention prune deletes by age.
        indexes = [models.Index(fields=["ts"], name="events_ts_idx")]

    def __str__(self) -> str:
        return f"{self.topic}#{self.seq} {self.type}"

    def envelope(self) -> dict:
        return {
            "v": 1,
            "seq": self.seq,
            "topic": self.topic,
            "type": self.type,
            "ts": self.ts.isoformat().replace("+00:00", "Z"),
            "run_id": self.correlation_id,
            "data": self.data,
        }


SCOPES = ("read", "write", "worker", "admin")
TOKEN_PREFIX = "jhq_"  # noqa: S105 - the tokens' public prefix, not a secret


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> "ApiTokenQuerySet":
        """Tokens that still work: not revoked, not expired, and their owner still an active operator
        (a user who stops being staff, or is deactivated, loses every token at once)."""
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True, user__is_staff=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A bearer token for the JSON API and the event streams. Only its SHA-256 is stored."""

    name = models.CharField(max_length=100)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    prefix = models.CharField(max_length=16, help_text="The first characters, to tell tokens apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        db_table = "api_tokens"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def generate(cls, *, name: str, user, scopes: list[str], days: int | None) -> tuple["ApiToken", str]:
        """Build (unsaved) a token and its raw value; the raw value is never stored."""
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}")
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls(
            name=name,
            user=user,
            prefix=raw[: len(TOKEN_PREFIX) + 6],
            key_hash=hash_token(raw),
            scopes=sorted(set(scopes)),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        return token, raw

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    def has_scope(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes
