"""The FastAPI application: mounts the routers and maps domain errors to HTTP responses."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from asifdb import __version__
from asifdb.api.params import ERROR_RESPONSES
from asifdb.api.routes import (
    classify,
    curation,
    health,
    labelsets,
    licenses,
    pairs,
    predictions,
    retrieve,
)
from asifdb.context import Platform
from asifdb.errors import AsifdbError
from asifdb.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    platform = Platform(settings or get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        platform.close(keep_server=True)

    app = FastAPI(title="asifdb", version=__version__, lifespan=lifespan)
    app.state.platform = platform

    @app.exception_handler(AsifdbError)
    async def _domain_error(request: Request, exc: AsifdbError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)

    for module in (health, classify, retrieve, labelsets, licenses, pairs, predictions, curation):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    return app


app = create_app()
