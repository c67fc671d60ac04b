"""What every route shares in its OpenAPI contract: id and paging parameters, non-blank text,
and the error responses (every error is `{"detail": ...}` with the reason in words).

The bounds are part of the contract: an id beyond PostgreSQL's bigint or a blank name is refused
with 422 by validation, before any handler runs.
"""

from typing import Annotated, Any

from fastapi import Form, Path, Query
from pydantic import Field

from asifdb.schemas.base import Problem

MAX_ID = 2**63 - 1  # PostgreSQL bigint: pairs, jobs, predictions
MAX_SMALL_ID = 2**31 - 1  # PostgreSQL integer: licences, label sets
MAX_OFFSET = 10_000_000

Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A positive id.")]
LicenceId = Annotated[int, Path(ge=1, le=MAX_SMALL_ID, description="A licence's id.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip.")]
# At least one character that is not white space (JSON Schema patterns are unanchored).
NON_BLANK = r"\S"
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NON_BLANK)]
# In a request body: a pair's (or any bigint row's) id.
BodyId = Annotated[int, Field(ge=1, le=MAX_ID, description="A positive id.")]
# A file or folder on the server, named by its absolute path (a relative one would depend on
# the server's working directory). PATH_MAX on Linux.
MAX_PATH = 4096
ServerPath = Annotated[
    str,
    Field(
        min_length=2,
        max_length=MAX_PATH,
        pattern=r"^/.*\S",
        description="An absolute path on the server.",
    ),
]
# In a form: the model a query runs on (`asifdb models list`); none, the default model.
ModelName = Annotated[
    str | None, Form(max_length=64, description="A named model (default: the default).")
]
# A caption template: where the class name goes is marked {}.
Template = Annotated[str, Field(min_length=1, max_length=500, pattern=r"\{\}")]


_ERRORS = {
    401: "No API key, or an unknown or revoked one",
    403: "The key's role does not allow this",
    404: "No such object",
    409: "Conflicts with the current state (for example: no usable pairs yet)",
    413: "Too large: a body over its route's byte limit (`detail` names the setting)",
    422: "Invalid input; `detail` says which and why (and the setting, for a limit)",
    429: "Too many requests for this key or address; retry after `Retry-After` seconds",
    503: "Not ready: the database, its schema or the model is unavailable",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": description}
    for status, description in _ERRORS.items()
}
