"""Request dependencies: the process's platform, its engine and sessions, as `Annotated` types."""

from typing import Annotated

from fastapi import Depends, Request

from asifdb.context import Platform


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(get_platform)]
