"""CSRF: a state-changing request that carries the session cookie must come from this origin.

``SameSite=Lax`` stops cross-site requests, but a sibling subdomain is the *same site*: a page
on ``evil.example.com`` may POST to ``api.example.com`` with the user's cookie. So an unsafe
method (POST, PUT, PATCH, DELETE, anything not GET/HEAD/OPTIONS/TRACE) that carries the session
cookie is refused with 403 unless the browser shows it comes from the same *origin*:

1. ``Origin`` present: it must equal this service's origin (scheme, host and port of the request
   as the service sees it, so behind a TLS-terminating proxy ``FORWARDED_ALLOW_IPS`` must trust
   the proxy's ``X-Forwarded-Proto``) or one of the trusted origins (``CSRF_TRUSTED_ORIGINS``).
   ``Origin: null`` (sandboxed frames, some redirects) is refused.
2. No ``Origin`` but ``Sec-Fetch-Site``: only ``same-origin`` and ``none`` (the user typed the
   URL) pass; ``same-site`` and ``cross-site`` are refused.
3. Neither header: allowed. Every browser in use sends ``Origin`` on unsafe requests, and Fetch
   Metadata on top, so such a request comes from a non-browser client, which has no victim's
   ambient cookie to abuse (the Fetch Metadata resource-isolation policy also lets these through).

Requests without the session cookie (bearer-token admin routes, signed URLs, a first login) do not
rely on ambient credentials and are not checked.
"""

import json
from urllib.parse import urlsplit

from ..asgi import ASGIApp, Receive, Scope, Send, send_json
from ..cookies import cookie_value

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}
REFUSED_BODY = json.dumps({"detail": "cross-origin request refused"}).encode()


def normalise_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or None if not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_origins(value: str) -> frozenset[str]:
    """Comma-separated origins; ValueError naming the first that is not ``scheme://host[:port]``."""
    origins = set()
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        origin = normalise_origin(item)
        if origin is None:
            raise ValueError(f"{item!r} is not an origin (scheme://host[:port], http or https)")
        origins.add(origin)
    return frozenset(origins)


class CsrfMiddleware:
    def __init__(
        self, app: ASGIApp, cookie_name: str, trusted_origins: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.cookie_name = cookie_name
        self.trusted_origins = trusted_origins

    def _carries_cookie(self, scope: Scope) -> bool:
        # Read as the sessions read it (cookies.py): what they can see, this check sees.
        return cookie_value(scope["headers"], self.cookie_name) is not None

    def _own_origin(self, scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if not host and scope.get("server"):
            server_host, server_port = scope["server"]
            host = f"{server_host}:{server_port}"
        return normalise_origin(f"{scope.get('scheme', 'http')}://{host}") if host else None

    def allowed(self, scope: Scope) -> bool:
        """Whether this request may go on to the application."""
        if scope["method"] in SAFE_METHODS:
            return True
        if not self._carries_cookie(scope):
            return True
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        if origin is not None:
            claimed = normalise_origin(origin.decode("latin-1"))
            if claimed is None:
                return False  # "null" or garbage
            return claimed == self._own_origin(scope, headers) or claimed in self.trusted_origins
        fetch_site = headers.get(b"sec-fetch-site")
        if fetch_site is not None:
            return fetch_site.decode("latin-1").lower() in ALLOWED_FETCH_SITES
        return True  # a non-browser client (see the module docstring)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        await send_json(send, 403, REFUSED_BODY)
