"""Every operation of the JSON API, fuzzed from its own OpenAPI schema against the real server, with an
admin, a read-only and a worker token, on valid inputs (positive mode) and invalid ones (negative mode):
never a 5xx (other than a documented 503 in the error shape), every answer as the schema says (status
code, content type, body), invalid input always refused with a 4xx, and a read-only token changes no
row's content.

The run is bounded and deterministic (``FUZZ_EXAMPLES`` cases per operation, token and mode,
derandomized), so it stays a few hundred requests in CI, on SQLite and on Postgres alike.
"""

import hashlib
import os

import pytest
import requests
import schemathesis
from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from juggernaut.api import api
from juggernaut.engine.models import EngineState
from juggernaut.models import ApiToken

pytestmark = pytest.mark.process  # a live daphne server and a thousand-odd requests

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
CHECKS = {
    GenerationMode.POSITIVE: [status_code_conformance, content_type_conformance, response_schema_conformance],
    # Invalid input must be refused (a 4xx), and the refusal is still a documented answer in the
    # error shape. positive_data_acceptance is not asked for: valid input is often refused rightly
    # (no such id, a lease that is not the caller's).
    GenerationMode.NEGATIVE: [
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ],
}
# The stream never ends by itself (tests/juggernaut/test_events.py drives it); the rest are fuzzed.
SKIP = {("GET", "/api/events/{topic}/stream")}
# Ingest refuses a bad NDJSON line on its own, listed in a 200 with the lines it kept: invalid lines are
# not a refused request there (the other checks still apply).
LINE_BY_LINE = {("POST", "/api/logs/ingest")}
# Columns a read may change by design: the calling token's last use (recorded at most once a minute).
READ_MAY_TOUCH = {(ApiToken._meta.db_table, "last_used_at")}


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value) -> bytes:
    """The ingest body: the schema describes one line; a generated line is sent as a one-line body."""
    return DjangoJSONEncoder().encode(value).encode() + b"\n"


schema = schemathesis.openapi.from_dict(api.get_openapi_schema(path_prefix="/api/"))
OPERATIONS = [
    op
    for op in (result.ok() for result in schema.get_all_operations())
    if (op.method.upper(), op.path) not in SKIP
]
# Negative mode needs something to make invalid: a parameter or a body (health, for one, has neither).
WITH_INPUT = [
    op for op in OPERATIONS if op.definition.raw.get("parameters") or "requestBody" in op.definition.raw
]
tally = {"cases": 0, "negative": 0, "server_errors": 0}


def snapshot() -> dict[str, str]:
    """A digest of every row of every table: a read-only caller must leave each one as it was."""
    digests = {}
    for model in apps.get_models():
        if not model._meta.managed:
            continue
        table = model._meta.db_table
        columns = [f.attname for f in model._meta.concrete_fields if (table, f.attname) not in READ_MAY_TOUCH]
        rows = model._default_manager.order_by("pk").values_list(*columns)
        digest = hashlib.sha256()
        for row in rows.iterator():
            digest.update(DjangoJSONEncoder().encode(list(row)).encode())
        digests[table] = digest.hexdigest()
    return digests


def checks_for(operation, mode: GenerationMode) -> list:
    if (operation.method.upper(), operation.path) in LINE_BY_LINE:
        return [c for c in CHECKS[mode] if c is not negative_data_rejection]
    return CHECKS[mode]


def no_server_error(response, case) -> None:
    """No 5xx except a documented 503 in the error shape (database busy, provider not configured)."""
    if response.status_code >= 500:
        tally["server_errors"] += response.status_code != 503
        assert response.status_code == 503, f"{response.status_code} from {case.method} {case.formatted_path}"
        assert set(response.json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("scope", ["admin", "read", "worker"])
def test_it_answers_every_operation_within_its_schema(scope, mode, alice, transactional_db, hq_server):
    token, raw = ApiToken.generate(name=f"fuzz-{scope}", user=alice, scopes=[scope], days=1)
    token.save()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {raw}"
    EngineState.load()  # the row every migrated database has (the flush between tests removes it)
    before = snapshot() if scope == "read" else None
    fuzzed = 0
    operations = OPERATIONS if mode == GenerationMode.POSITIVE else WITH_INPUT

    for operation in operations:
        strategy = operation.as_strategy(generation_mode=mode)

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def fuzz(case) -> None:
            nonlocal fuzzed
            response = case.call(base_url=hq_server, session=session, timeout=30)
            tally["cases"] += 1
            tally["negative"] += mode == GenerationMode.NEGATIVE
            fuzzed += 1
            no_server_error(response, case)
            case.validate_response(response, checks=checks_for(case.operation, mode))

        fuzz()

    assert fuzzed >= len(operations)  # every operation got cases, in this mode too
    if before is not None:
        after = snapshot()
        changed = sorted(t for t in before if before[t] != after[t])
        assert not changed, f"a read-only token changed rows of: {changed}"
