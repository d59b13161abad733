"""Side connections (LISTEN for the relay and the worker) reach Postgres the way the ORM does."""

from juggernaut.db import pg_connect_params
from juggernaut.settings import database_from_url


def test_it_keeps_sslmode_and_the_address_for_listen_connections(tmp_path):
    db = database_from_url(
        "postgres://hq:s3cret@db.example:6543/hq?sslmode=require&connect_timeout=5", tmp_path
    )
    assert pg_connect_params(db) == {
        "dbname": "hq",
        "user": "hq",
        "password": "s3cret",
        "host": "db.example",
        "port": "6543",
        "sslmode": "require",
        "connect_timeout": "5",
    }


def test_it_leaves_out_what_the_url_does_not_say(tmp_path):
    assert pg_connect_params(database_from_url("postgres:///hq", tmp_path)) == {"dbname": "hq"}
