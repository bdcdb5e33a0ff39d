"""Example application routes. Replace or extend them; keep handlers free of process-local state."""

from fastapi import APIRouter, Request

from ..observability.logs import get_logger
from ..observability.request_id import current_request_id

router = APIRouter()
logger = get_logger(__name__)


@router.get("/")
async def index(request: Request) -> dict[str, str | None]:
    settings = request.app.state.settings
    # Debug, not info: the access log already writes one line for every request.
    logger.debug("index served")
    return {"service": settings.service_name, "request_id": current_request_id()}
