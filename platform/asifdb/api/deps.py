"""Request dependencies as `Annotated` types: the platform, a session, the calling principal,
the request limits, and the runner that takes heavy work off the event loop."""

import functools
import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from asifdb.context import Platform
from asifdb.errors import Unauthorized
from asifdb.limits import RequestLimits
from asifdb.services.keys import Principal

T = TypeVar("T")

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An asifdb API key")


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def get_session(platform: PlatformDep) -> Iterator[Session]:
    """One transaction per request: committed if the handler returns, rolled back if it raises."""
    with platform.sessions() as session, session.begin():
        yield session


# scope="function": the transaction commits before the response is sent. With the default
# ("request") it committed after, so a client could act on a 200 before its write was visible
# (or the commit could fail after the client was told it succeeded).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(request: Request, _: Annotated[str | None, Security(_api_key)]) -> Principal:
    """The caller, authenticated by the boundary from the header before the body was read."""
    principal = caller(request)
    if principal is None:
        raise Unauthorized("missing API key: send it in the X-API-Key header")
    return principal


def caller(request: Request) -> Principal | None:
    """The principal of the request's key, or None on a public path called without one."""
    return getattr(request.state, "principal", None)


def get_limits(request: Request) -> RequestLimits:
    return request.app.state.limits


LimitsDep = Annotated[RequestLimits, Depends(get_limits)]


class HeavyWork:
    """Runs encoder and engine work in a worker thread, at most API_HEAVY_CONCURRENCY at once:
    the event loop (and every light route) stays free however long a query takes."""

    def __init__(self, concurrency: int) -> None:
        self._limiter = anyio.CapacityLimiter(concurrency)

    async def run(self, work: Callable[..., T], /, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(
            functools.partial(work, **kwargs), limiter=self._limiter
        )


def get_heavy(request: Request) -> HeavyWork:
    return request.app.state.heavy


HeavyDep = Annotated[HeavyWork, Depends(get_heavy)]


def allowed(permission: str) -> Callable[..., Principal]:
    """A dependency that admits callers whose role carries `permission` (403 otherwise)."""

    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        principal.require(permission)
        return principal

    return check


async def reject_nul(request: Request) -> None:
    """No text field may hold NUL (PostgreSQL cannot store it): in the path, the query, a JSON
    body or a form (values and file names), it is a 422 naming the field, before any handler."""
    found: list[tuple[str | int, ...]] = []
    for name, value in request.path_params.items():
        if "\x00" in str(value):
            found.append(("path", name))
    for name, value in request.query_params.multi_items():
        if "\x00" in name + value:
            found.append(("query", name))
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        for name, value in (await request.form()).multi_items():
            if isinstance(value, str):
                if "\x00" in name + value:
                    found.append(("body", name))
            elif "\x00" in (value.filename or ""):
                found.append(("body", name, "filename"))
    elif kind == "application/json" or kind.endswith("+json"):
        try:
            body = json.loads(await request.body())
        except ValueError:  # malformed JSON: FastAPI's own validation says where
            body = None
        found.extend(_nul_in(body, ("body",)))
    if found:
        raise RequestValidationError(
            [
                {
                    "type": "string_nul",
                    "loc": loc,
                    "msg": "NUL characters (\\u0000) are not allowed in text",
                    "input": None,
                }
                for loc in found
            ]
        )


def _nul_in(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, str):
        if "\x00" in value:
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nul_in(key, (*loc, key)) if "\x00" in key else _nul_in(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_in(item, (*loc, index))
