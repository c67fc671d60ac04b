"""Pieces several resources share."""

from typing import Any

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    """The base of every public model: unknown fields are refused, so a service cannot return
    more (or other spellings) than the contract says."""

    model_config = ConfigDict(extra="forbid")


class Problem(Schema):
    """An error: `detail` says why, in words (or, for a malformed request, lists each field)."""

    detail: str | list[dict[str, Any]]
