"""Database connections outside plain ORM use: the per-process Postgres pool (Django's
``OPTIONS["pool"]``, sized in settings) and the details side connections (``LISTEN``) need."""

from django.conf import settings
from django.db import connections, transaction
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper


def pg_connect_params(db: dict | None = None) -> dict:
    """psycopg ``connect()`` keywords for a ``settings.DATABASES`` entry (the default one if None),
    OPTIONS included (``sslmode`` and the like), so a side connection reaches the server the way
    the ORM does."""
    db = db if db is not None else connections["default"].settings_dict
    params = {
        "dbname": db["NAME"],
        "user": db["USER"] or None,
        "password": db["PASSWORD"] or None,
        "host": db["HOST"] or None,
        "port": db["PORT"] or None,
    }
    params.update({k: v for k, v in (db.get("OPTIONS") or {}).items() if isinstance(v, str | int)})
    return {k: v for k, v in params.items() if v is not None}


# A LISTEN connection that drops is opened again after 1, 2, 4 ... seconds, never more than this apart,
# for as long as the process lives.
LISTEN_RETRY_MAX_SECONDS = 10.0


def listen_connect_params() -> dict:
    """``connect()`` keywords for a long-lived ``LISTEN`` connection: the ORM's, in autocommit, with a
    connect timeout, and TCP keepalives so a server that vanished without closing the socket (a
    machine gone, a network cut) is noticed in seconds instead of after the kernel's two hours."""
    return {
        **pg_connect_params(),
        "autocommit": True,
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }


def listen_backoff(previous: float) -> float:
    """The next wait before reopening a lost ``LISTEN`` connection (doubling, capped)."""
    return min(max(previous * 2, 1.0), LISTEN_RETRY_MAX_SECONDS)


def forget_inherited_pools() -> None:
    """A forked child (django-q2's workers) must not use its parent's pool: the pool's threads did not
    survive the fork and its sockets belong to the parent. Drop it, unclosed; the child opens its own."""
    PostgresWrapper._connection_pools.clear()


def pool_at_least(size: int, alias: str = "default") -> None:
    """Grow this process's pool to ``size`` if it is smaller: a process whose threads each hold a
    connection (an engine worker with N runners) would otherwise wait on itself. No-op without a pool."""
    connection = connections[alias]
    options = connection.settings_dict.get("OPTIONS", {}).get("pool")
    if not isinstance(options, dict) or options.get("max_size", 0) >= size:
        return
    options["max_size"] = size
    connection.close_pool()  # the next connection opens a pool of the new size


def queryset_delete_batched(queryset, *, batch: int | None = None) -> int:
    """Delete the rows of ``queryset`` ``batch`` at a time (``HQ_PRUNE_BATCH``), each batch its own
    statement and transaction, holding no more than one batch's primary keys in memory: a retention
    prune of millions of rows neither loads them (``QuerySet.delete()`` fetches every row that has
    cascades to follow) nor holds a lock for the whole run. Returns the number of rows deleted."""
    size = max(batch or settings.HQ_PRUNE_BATCH, 1)
    model, total = queryset.model, 0
    while True:
        keys = list(queryset.order_by().values_list("pk", flat=True)[:size])
        if not keys:
            return total
        with transaction.atomic():
            # only the keys are read back: cascades need nothing else
            deleted = model.objects.filter(pk__in=keys).only("pk").delete()[1].get(model._meta.label, 0)
        total += deleted
        if len(keys) < size:
            return total
