import copy
from pathlib import Path

import pytest

from codehealth.contracts import schema_diff, validate_contracts
from juggernaut.api import api

FRONTEND = Path(__file__).parent / "fixtures" / "frontend"
BACKEND = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def schema():
    return api.get_openapi_schema()


def _by_category(findings):
    return {(f.category, f.name): f for f in findings}


def test_it_catches_each_kind_of_mismatch_against_the_projects_own_schema(schema):
    found = _by_category(validate_contracts(schema, FRONTEND, backend_root=BACKEND))
    assert set(found) == {
        ("missing_response_field", "Token.lastUsed"),
        ("type_mismatch", "Token.created_at"),
        ("required_field_not_sent", "POST /api/tokens scopes"),
        ("missing_endpoint", "POST /api/engine/tasks/{}/archive"),
        ("missing_endpoint", "DELETE /api/engine/tasks/{}"),
        ("type_missing_optional_field", "Task.result"),  # drift, with its mechanical fix
    }
    renamed = found[("missing_response_field", "Token.lastUsed")]
    assert "last_used_at" in renamed.reason
    assert (renamed.path, renamed.line) == ("lib/api.ts", 9)
    assert renamed.extra["backend"]["file"] == "juggernaut/api.py"  # both sides have a file and a line
    assert renamed.extra["backend"]["line"] > 0
    assert renamed.extra["used_by"] == "lib/api.ts:26"
    assert "integer" not in found[("type_mismatch", "Token.created_at")].reason
    assert "but not for DELETE" in found[("missing_endpoint", "DELETE /api/engine/tasks/{}")].reason


def test_a_matching_frontend_has_no_violation(schema, tmp_path):
    (tmp_path / "api.ts").write_text(
        "interface Task { id: number; title: string; status: string; result?: unknown }\n"
        "export const getTask = (id: number) => apiFetch<Task>(`/api/engine/tasks/${id}`);\n"
        "export const mint = () => fetch('/api/tokens', {method: 'POST', body: JSON.stringify({name, scopes})});\n"
        "export const other = () => fetch('https://example.com/elsewhere');\n"
    )
    assert validate_contracts(schema, tmp_path) == []


def test_breaking_changes_are_named_by_oasdiff_rules(schema):
    new = copy.deepcopy(schema)
    del new["paths"]["/api/engine/pause"]
    components = new["components"]["schemas"]
    components["TokenIn"]["properties"]["team"] = {"type": "string"}
    components["TokenIn"]["required"].append("team")
    del components["TokenOut"]["properties"]["prefix"]
    components["TokenOut"]["properties"]["id"] = {"type": "string"}
    rules = {(f.extra["rule"], f.path) for f in schema_diff(schema, new)}
    assert ("api-path-removed-without-deprecation", "/api/engine/pause") in rules
    assert ("new-required-request-property", "/api/tokens") in rules
    assert ("response-required-property-removed", "/api/tokens") in rules
    assert ("response-property-type-changed", "/api/tokens") in rules
    assert schema_diff(schema, copy.deepcopy(schema)) == []


def test_a_type_missing_an_optional_field_gets_a_types_only_fix(schema):
    from codehealth.autopr import edits_apply

    source = (FRONTEND / "lib" / "api.ts").read_text()
    drift = next(
        f
        for f in validate_contracts(schema, FRONTEND, backend_root=BACKEND)
        if f.category == "type_missing_optional_field"
    )
    assert drift.fixable and drift.confidence == 50 and (drift.path, drift.line) == ("lib/api.ts", 13)
    fixed = edits_apply(source, drift.extra["edits"])
    assert "  priority: number;\n  result?: unknown;\n}" in fixed  # after the last field, indented like it
    assert fixed.replace(drift.extra["edits"][0]["content"], "", 1) == source  # one line added, nothing else


def test_a_one_line_type_gets_the_finding_but_no_fix(schema, tmp_path):
    (tmp_path / "api.ts").write_text(
        "interface Task { id: number; title: string; status: string }\n"
        "export const getTask = (id: number) => apiFetch<Task>(`/api/engine/tasks/${id}`);\n"
    )
    (drift,) = validate_contracts(schema, tmp_path)
    assert (
        drift.category == "type_missing_optional_field" and not drift.fixable and "edits" not in drift.extra
    )


def test_ts_spelling_of_schema_types():
    from codehealth.contracts import ts_type_of

    assert ts_type_of("integer") == "number" and ts_type_of("string", nullable=True) == "string | null"
    assert ts_type_of("integer[]") == "number[]" and ts_type_of("string|integer[]") == "(string | number)[]"
    assert ts_type_of("object") == "unknown" and ts_type_of("object", nullable=True) == "unknown"
