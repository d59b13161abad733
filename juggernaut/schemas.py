"""Schema types shared by every app's API."""

from typing import Annotated

from pydantic import Field

# A database id: positive and within a signed 64-bit integer, so a huge number is a 422, not a crash.
DbId = Annotated[int, Field(ge=1, le=2**63 - 1)]
