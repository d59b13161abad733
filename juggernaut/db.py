"""Database connection details that code outside the ORM needs (Postgres ``LISTEN`` connections)."""

from django.db import connections


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
