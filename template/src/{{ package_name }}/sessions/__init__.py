"""Server-side sessions in the shared store: any replica can serve any request of a session."""

from .manager import Session, SessionManager
from .middleware import SessionMiddleware, request_session

__all__ = ["Session", "SessionManager", "SessionMiddleware", "request_session"]
