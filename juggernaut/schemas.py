"""Schema types shared by every app's API, and the error answers the OpenAPI schema declares."""

from typing import Annotated, Any

from ninja import Schema
from pydantic import Field

# A database id: positive and within a signed 64-bit integer, so a huge number is a 422, not a crash.
DbId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class ErrorDetail(Schema):
    code: str
    message: str
    details: Any = None


class ErrorOut(Schema):
    """The one error shape of the API."""

    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    "400": "Bad request",
    "401": "Not signed in, or the bearer token is unknown, expired or revoked",
    "403": "The token lacks the scope, or the object is not the caller's",
    "404": "No such object",
    "409": "Conflict with the object's current state (for example `lease_lost`, `name_taken`)",
    "413": "The request body is over the configured limit",
    "422": "The request did not validate (including NUL characters, non-finite or out-of-range numbers)",
    "503": "No database connection could be had in time; retry after `Retry-After` seconds",
}


def declare_errors(schema: dict) -> dict:
    """Add the error answers each operation can give, in the one error shape, to an OpenAPI schema."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorDetail"] = ErrorDetail.model_json_schema(ref_template="#/components/schemas/{model}")
    components["ErrorOut"] = {
        "title": "ErrorOut",
        "type": "object",
        "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
        "required": ["error"],
    }
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            codes = ["400", "422", "503"]
            if op.get("security"):
                codes += ["401", "403"]
            if "{" in path:
                codes.append("404")
            if method != "get":
                codes.append("409")
            if "requestBody" in op:
                codes.append("413")
            # ninja keys its answers by int; one key per code, or JSON parsers see duplicates.
            responses = op["responses"] = {str(k): v for k, v in op.get("responses", {}).items()}
            for code in sorted(codes):
                answer = {"description": ERROR_DESCRIPTIONS[code], "content": body}
                if code == "503":
                    answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
                responses.setdefault(code, answer)
    return schema
