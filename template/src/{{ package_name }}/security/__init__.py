"""Protections every route gets: security headers, CSRF refusal and login throttling.

Pure ASGI and plain Python: no web framework is imported here; the adapter (``web/app.py``)
installs the middleware and calls the throttle from its login route.
"""

from .csrf import CsrfMiddleware, parse_origins
from .headers import SecurityHeadersMiddleware
from .throttle import Limit, LoginAttempt, LoginThrottle, LoginThrottled

__all__ = [
    "CsrfMiddleware",
    "Limit",
    "LoginAttempt",
    "LoginThrottle",
    "LoginThrottled",
    "SecurityHeadersMiddleware",
    "parse_origins",
]
