"""The API's OpenAPI document, finished: what ninja cannot say from the operations' signatures.

ninja documents each operation's success answers and JSON bodies. This module adds, in one place, the
refusals every operation can give (in the one error shape), the ones a single operation declares
(``refusals``), the bodies and answers that are not JSON (``event_stream``, ``ndjson_body``), each
topic's event envelopes as a union (``TopicEvents``, declared by the app that publishes them), the
root security, and drops the components nothing refers to. The wire does not change: only the document.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from juggernaut.schemas import ErrorDetail

REF = "#/components/schemas/"

ERROR_DESCRIPTIONS = {
    "400": "Bad request",
    "401": "Not signed in, or the bearer token is unknown, expired or revoked",
    "402": "A budget would be exceeded (`budget_exceeded`, with the budget in `details`)",
    "403": "The token lacks the scope, or the object is not the caller's",
    "404": "No such object (an id or name in the path, the query or the body)",
    "409": "Conflict with the object's current state (for example `lease_lost`, `name_taken`)",
    "413": "The request body is over the configured limit (`body_too_large`, the limit in `details`)",
    "422": "The request did not validate (including NUL characters, non-finite or out-of-range numbers)",
    "429": "Too many requests (`rate_limited`): try again later",
    "502": "An upstream service failed (`model_error`, `github_refused`...); `details` says whether a retry may help",
    "503": "Unavailable for now (`database_busy`: no database connection in time, retry after `Retry-After` "
    "seconds; or a provider not configured)",
}
SECURITY = [{"BearerTokenAuth": []}, {"SessionStaffAuth": []}]
SERVERS = [{"url": "/", "description": "This HQ (the document's own origin)"}]
LICENSE = {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"}


def error_answer(code: int | str, description: str = "") -> dict:
    """One refusal in the one error shape; 503 says when to retry."""
    code = str(code)
    answer: dict[str, Any] = {
        "description": description or ERROR_DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": REF + "ErrorOut"}}},
    }
    if code in {"503", "429"}:
        answer["headers"] = {
            "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
        }
    return answer


def refusals(answers: dict[int, str]) -> dict:
    """``openapi_extra`` for the refusals only this operation gives: ``{402: "`budget_exceeded`..."}``."""
    return {"responses": {str(code): error_answer(code, text) for code, text in answers.items()}}


def event_stream(description: str, *, parameters: list[dict] | None = None) -> dict:
    """``openapi_extra`` for an operation that answers server-sent events."""
    extra: dict[str, Any] = {
        "responses": {
            200: {
                "description": description,
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        }
    }
    if parameters:
        extra["parameters"] = parameters
    return extra


def ndjson_body(line: type[BaseModel], description: str) -> dict:
    """``openapi_extra`` for a body of newline-delimited JSON: its media type, and the schema of a line."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/x-ndjson": {"schema": line.model_json_schema()}},
        }
    }


@dataclass(frozen=True)
class TopicEvents:
    """The envelopes an app publishes on topics that match ``pattern``: their ``data`` by ``type``.

    An app's ``api.py`` declares it as ``EVENTS``; the document's event envelope becomes a union of
    one variant per type, plus the envelope of every other topic (its ``data`` an open object)."""

    name: str  # a prefix of the variants' schema names: "ChatRun" gives "ChatRunTokenEvent"
    pattern: str
    data: dict[str, type[BaseModel]] = field(default_factory=dict)


def _add_model(components: dict, model: type[BaseModel]) -> None:
    schema = model.model_json_schema(ref_template=REF + "{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components[model.__name__] = schema


def _camel(text: str) -> str:
    return "".join(part.capitalize() for part in text.split("_"))


def _event_union(components: dict, topics: list[TopicEvents]) -> None:
    """Replace the open envelope schema with the union of the declared topics' envelopes."""
    envelope = components.get("EnvelopeOut")
    if not envelope or not topics:
        return
    base = envelope["properties"]
    variants = []
    for topic in topics:
        for type_, model in topic.data.items():
            _add_model(components, model)
            name = f"{topic.name}{_camel(type_)}Event"
            components[name] = {
                "title": name,
                "type": "object",
                "properties": {
                    **base,
                    "topic": {"type": "string", "pattern": topic.pattern},
                    "type": {"type": "string", "const": type_},
                    "data": {"$ref": REF + model.__name__},
                },
                "required": envelope["required"],
            }
            variants.append({"$ref": REF + name})
    others = "|".join(f"(?:{t.pattern.strip('^$')})" for t in topics)
    components["OtherTopicEvent"] = {
        "title": "OtherTopicEvent",
        "description": "An event of a topic whose payloads are not typed here: `data` is an open object.",
        "type": "object",
        "properties": {**base, "topic": {"type": "string", "not": {"pattern": f"^(?:{others})$"}}},
        "required": envelope["required"],
    }
    variants.append({"$ref": REF + "OtherTopicEvent"})
    components["EnvelopeOut"] = {
        "title": "EnvelopeOut",
        "description": "An event envelope: the type of `data` follows from `topic` and `type`.",
        "anyOf": variants,  # exclusive all the same: each variant names its topics and type
    }


def _common_refusals(path: str, method: str, op: dict) -> list[str]:
    codes = ["400", "422", "503"]
    if op.get("security"):
        codes += ["401", "403"]
        # 404: an unknown id or name, in the path, the query or the body.
        if op.get("parameters") or "application/json" in op.get("requestBody", {}).get("content", {}):
            codes.append("404")
    if method != "get":
        codes.append("409")
    if "requestBody" in op:
        codes.append("413")
    return codes


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF):
                found.add(ref[len(REF) :])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _reached(components: dict, roots: set[str]) -> set[str]:
    reached: set[str] = set()
    todo = set(roots)
    while todo:
        name = todo.pop()
        if name not in reached and name in components:
            reached.add(name)
            todo |= _refs(components[name]) - reached
    return reached


def _input_defaults(schema: dict) -> None:
    """Say an input field's default in words, not with ``default``.

    Generators read ``default`` as "always there" (openapi-typescript's default flags make such a
    field required), which is true of answers and false of requests: a field with a default may be
    left out. Only the schemas that requests alone use change."""
    components = schema["components"]["schemas"]
    operations = [op for ops in schema["paths"].values() for op in ops.values()]
    inputs = _reached(components, _refs([op.get("requestBody", {}) for op in operations]))
    outputs = _reached(components, _refs([op.get("responses", {}) for op in operations]))
    for name in inputs - outputs:
        for prop in components[name].get("properties", {}).values():
            if "default" in prop:
                default = json.dumps(prop.pop("default"))
                prop["description"] = f"{prop.get('description', '')} Default: `{default}`.".lstrip()


def _prune(schema: dict) -> None:
    """Drop the components nothing in the paths reaches (ninja lists query schemas it inlines)."""
    components = schema["components"]["schemas"]
    reached = _reached(components, _refs(schema["paths"]))
    for name in list(components):
        if name not in reached:
            del components[name]


def document_finish(schema: dict, topics: list[TopicEvents]) -> dict:
    """The document ninja made, completed as this module's docstring says."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _add_model(components, ErrorDetail)
    components["ErrorOut"] = {
        "title": "ErrorOut",
        "description": "The one error shape of the API.",
        "type": "object",
        "properties": {"error": {"$ref": REF + "ErrorDetail"}},
        "required": ["error"],
    }
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            # ninja keys its answers by int; one key per code, or JSON parsers see duplicates.
            responses = op["responses"] = {str(k): v for k, v in op.get("responses", {}).items()}
            for code in sorted(_common_refusals(path, method, op)):
                responses.setdefault(code, error_answer(code))
            op["responses"] = dict(sorted(responses.items()))
            if "security" not in op:
                op["security"] = []  # public, and said so (the root asks for a token or a session)
    _event_union(components, topics)
    schema["security"] = SECURITY
    _prune(schema)
    _input_defaults(schema)
    return schema
