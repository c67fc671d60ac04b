"""Request dependencies as `Annotated` types: the platform, a session, the calling principal."""

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from asifdb.context import Platform
from asifdb.services import keys
from asifdb.services.keys import Principal

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


def get_principal(
    platform: PlatformDep, key: Annotated[str | None, Security(_api_key)]
) -> Principal:
    with platform.sessions() as session:
        return keys.authenticate(session, key=key)


def allowed(permission: str) -> Callable[..., Principal]:
    """A dependency that admits callers whose role carries `permission` (403 otherwise)."""

    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        principal.require(permission)
        return principal

    return check
