"""`GET /health`: database, migrations, broker and model state; 503 when any part is down."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from asifdb.api.deps import PlatformDep
from asifdb.broker import broker_url
from asifdb.services.status import platform_status

router = APIRouter(tags=["health"])


@router.get("/health", summary="Platform health")
def health(platform: PlatformDep) -> Any:
    url = broker_url(redis_url=platform.settings.redis_url, database_url=platform.url)
    report = platform_status(engine=platform.engine, broker_url=url)
    return JSONResponse(report, status_code=200 if report["ok"] else 503)
