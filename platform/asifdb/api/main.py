"""The FastAPI application: the boundary (keys, rate limits, body limits), the routers, and how
domain and data errors become HTTP responses."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from asifdb import __version__
from asifdb.api.boundary import Boundary
from asifdb.api.deps import HeavyWork, reject_nul
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
from asifdb.limits import RequestLimits
from asifdb.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    platform = Platform(settings or get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        platform.close(keep_server=True)

    limits = RequestLimits.from_settings(platform.settings)
    app = FastAPI(
        title="asifdb",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(reject_nul)],
        form_limits=limits.form_parts(),
    )
    app.state.platform = platform
    app.state.limits = limits
    app.state.heavy = HeavyWork(platform.settings.api_heavy_concurrency)
    app.add_middleware(Boundary, platform=platform, limits=limits)

    @app.exception_handler(AsifdbError)
    async def _domain_error(request: Request, exc: AsifdbError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)

    # The backstop: a value the schemas let through but PostgreSQL refuses (a NUL, a number or
    # text out of a column's range) is the caller's error, never a 500.
    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        reason = str(exc.orig).splitlines()[0] if exc.orig else "invalid value"
        return JSONResponse(
            {"detail": f"a value the database cannot store: {reason}"}, status_code=422
        )

    for module in (health, classify, retrieve, labelsets, licenses, pairs, predictions, curation):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    return app


app = create_app()
