"""Example application routes. Replace or extend them; keep views free of process-local state."""

from flask import Blueprint

from ..observability.logs import get_logger
from ..observability.request_id import current_request_id
from .dependencies import settings

blueprint = Blueprint("index", __name__)
logger = get_logger(__name__)


@blueprint.get("/")
def index() -> dict[str, str | None]:
    # Debug, not info: the access log already writes one line for every request.
    logger.debug("index served")
    return {"service": settings().service_name, "request_id": current_request_id()}
