"""Database connections outside plain ORM use: the per-process Postgres pool (Django's
``OPTIONS["pool"]``, sized in settings) and the details side connections (``LISTEN``) need."""

from django.db import connections
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
