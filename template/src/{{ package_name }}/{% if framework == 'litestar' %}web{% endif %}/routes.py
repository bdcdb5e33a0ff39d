"""Example application routes. Replace or extend them; keep handlers free of process-local state."""

from litestar import Router, get

from ..observability.logs import get_logger
from ..observability.request_id import current_request_id
from .dependencies import SettingsDep

logger = get_logger(__name__)


@get("/")
async def index(settings: SettingsDep) -> dict[str, str | None]:
    # Debug, not info: the access log already writes one line for every request.
    logger.debug("index served")
    return {"service": settings.service_name, "request_id": current_request_id()}


router = Router(path="/", route_handlers=[index])
