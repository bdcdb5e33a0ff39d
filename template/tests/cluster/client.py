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
    return cookie_header(response)


def cookie_header(
    response: httpx2.Response, previous: dict[str, str] | None = None
) -> dict[str, str]:
    """The Cookie header a browser sends after ``response``: every cookie it set (a login may
    set the session and a CSRF cookie), over those of ``previous``."""
    jar = dict(
        pair.split("=", 1) for pair in (previous or {}).get("Cookie", "").split("; ") if pair
    )
    for set_cookie in response.headers.get_list("set-cookie"):
        name, _, rest = set_cookie.partition("=")
        jar[name] = rest.split(";", 1)[0]
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in jar.items())}
