"""Schema types shared by every app's API (the OpenAPI document's finishing is ``juggernaut.openapi``)."""

from collections.abc import Iterable
from typing import Annotated, Any

from ninja import Schema
from pydantic import Field, WithJsonSchema

# A database id: positive and within a signed 64-bit integer, so a huge number is a 422, not a crash.
DbId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class ErrorDetail(Schema):
    code: str
    message: str
    details: Any = None


class ErrorOut(Schema):
    """The one error shape of the API."""

    error: ErrorDetail


def Choice(values: Iterable[str], description: str = "") -> Any:
    """A string field that takes a closed set: an enum in the OpenAPI document.

    Only the document says so: validation stays a plain string, so an answer is never refused for a
    value the set forgot, and an input outside it gets the refusal its service gives today."""
    schema: dict[str, Any] = {"type": "string", "enum": list(dict.fromkeys(values))}
    if description:
        schema["description"] = description
    return Annotated[str, WithJsonSchema(schema)]
