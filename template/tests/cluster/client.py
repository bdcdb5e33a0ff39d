"""Client helpers: production cookies are Secure, so the suite carries them by hand over
plain http on loopback."""

import secrets

import httpx2

from ..support.server import TLS_CONTEXT

# The demo login of every replica (production has none unless DEMO_PASSWORD is set).
DEMO_PASSWORD = secrets.token_urlsafe(32)


def login(base_url: str) -> dict[str, str]:
    """Log in as the demo user; returns the Cookie header to send with later requests."""
    response = httpx2.post(
        base_url + "/session/login",
        json={"username": "demo", "password": DEMO_PASSWORD},
        timeout=5,
        verify=TLS_CONTEXT,
    )
    assert response.status_code == 200, f"login failed: {response.status_code} {response.text}"
    name, _, rest = response.headers["set-cookie"].partition("=")
    return {"Cookie": f"{name}={rest.split(';', 1)[0]}"}
