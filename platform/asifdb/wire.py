"""One way to write any answer as JSON (the CLI's --json): the public schemas' models, lists
and dicts of them, dates (ISO 8601) — the same text the API sends."""

import json
from typing import Any

from pydantic_core import to_jsonable_python


def to_json(value: Any) -> str:
    """`value` as indented JSON; what JSON cannot hold is written as its string."""
    return json.dumps(to_jsonable_python(value, fallback=str), indent=2) + "\n"
