"""`GET /health`: whether the platform is up (200) or not (503); with an admin key, each part's
state (database, migrations, broker, model). Without one it reveals nothing else."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from asifdb.api.deps import PlatformDep, caller
from asifdb.broker import broker_url
from asifdb.schemas.health import Health
from asifdb.services.status import platform_status

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Platform health: up or not; each part's state with an admin key",
    response_model=Health,
    responses={503: {"description": "A part is down", "model": Health}},
)
def health(request: Request, platform: PlatformDep) -> JSONResponse:
    url = broker_url(redis_url=platform.settings.redis_url, database_url=platform.url)
    report = platform_status(engine=platform.engine, broker_url=url)
    principal = caller(request)
    if principal is None or not principal.allows("status:read"):
        report = Health(ok=report.ok)
    return JSONResponse(report.wire(), status_code=200 if report.ok else 503)
