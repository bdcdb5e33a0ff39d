"""Two real service processes sharing one store: any replica serves any session and cache entry."""

import asyncio
from collections.abc import Callable

import httpx2
import pytest

from .support.server import TLS_CONTEXT, ServerProcess, Services, StoreServer
from .support.tcp_gate import TcpGate

KEY = "0123456789abcdef" * 3
LOGIN = {"username": "demo", "password": "demo"}


Replicas = tuple[ServerProcess, ServerProcess]


@pytest.fixture
def replicas(module_services: Services, store_server: StoreServer) -> Replicas:
    """Two replicas on the session's store, started once for the module's tests. No in-process
    scheduler: its job ledger reads the store at every minute's tick, and the store commands
    counted here are the requests' alone (the variable is ignored where there is no scheduler)."""
    env = {
        "STORE_URL": store_server.url,
        "SECRET_KEY": KEY,
        "KEY_NAMESPACE": "replicas-test",
        "JOBS_SCHEDULER_ENABLED": "false",
    }
    return module_services.shared("a", **env), module_services.shared("b", **env)


def test_session_written_on_one_replica_is_read_on_the_other(replicas: Replicas) -> None:
    a, b = replicas
    with httpx2.Client(timeout=10, verify=TLS_CONTEXT) as client:
        assert client.post(a.base_url + "/session/login", json=LOGIN).status_code == 200
        assert client.get(b.base_url + "/session/whoami").json() == {"user": "demo"}
        assert client.post(b.base_url + "/session/logout").status_code == 204
        # The cookie jar dropped the cookie; replay it by hand: A must not know it any more.
    with httpx2.Client(timeout=10, verify=TLS_CONTEXT) as client:
        client.post(a.base_url + "/session/login", json=LOGIN)
        cookie = client.cookies["session"]
        client.post(b.base_url + "/session/logout")
        client.cookies.set("session", cookie)
        assert client.get(a.base_url + "/session/whoami").status_code == 401


def test_cache_entries_are_shared_between_replicas(replicas: Replicas) -> None:
    a, b = replicas
    with httpx2.Client(timeout=10, verify=TLS_CONTEXT) as client:
        client.post(a.base_url + "/session/login", json=LOGIN)
        put = client.put(a.base_url + "/cache/items/greeting", json={"value": {"hello": "world"}})
        assert put.status_code == 204
        assert client.get(b.base_url + "/cache/items/greeting").json() == {
            "value": {"hello": "world"}
        }
        first = client.get(a.base_url + "/cache/reports/daily").json()
        second = client.get(b.base_url + "/cache/reports/daily").json()
        assert first["cached"] is False
        assert second["cached"] is True
        assert second["computed_by"] == first["computed_by"]
        assert client.delete(b.base_url + "/cache/items/greeting").status_code == 204
        assert client.get(a.base_url + "/cache/items/greeting").status_code == 404


def test_cache_routes_need_a_session_and_validate_input(replicas: Replicas) -> None:
    a, _ = replicas
    with httpx2.Client(timeout=10, verify=TLS_CONTEXT) as client:
        assert client.get(a.base_url + "/cache/items/x").status_code == 401
        client.post(a.base_url + "/session/login", json=LOGIN)
        assert client.put(a.base_url + "/cache/items/x", json={"value": None}).status_code == 422
        too_long = {"value": 1, "ttl_seconds": 10**9}
        assert client.put(a.base_url + "/cache/items/x", json=too_long).status_code == 422
        assert client.get(a.base_url + "/cache/items/bad%20key").status_code == 422


def test_store_commands_per_request_counted_by_the_server(
    replicas: Replicas, store_server: StoreServer
) -> None:
    a, _ = replicas
    with httpx2.Client(timeout=10, verify=TLS_CONTEXT) as client:
        before = store_server.total_commands()
        for _ in range(20):
            assert client.get(a.base_url + "/session/whoami").status_code == 401
        assert store_server.total_commands() == before  # no cookie: no store access

        client.post(a.base_url + "/session/login", json=LOGIN)
        before_reads = store_server.command_count("get")
        before = store_server.total_commands()
        for _ in range(20):
            assert client.get(a.base_url + "/session/whoami").status_code == 200
        assert store_server.command_count("get") - before_reads == 20
        assert store_server.total_commands() - before == 20  # one read each, nothing else

        # Sessions are read on first use: a route that never asks for one costs no store
        # command, even with a live session cookie.
        assert client.cookies, "the login set no cookie"
        before = store_server.total_commands()
        for _ in range(20):
            assert client.get(a.base_url + "/").status_code == 200
        assert store_server.total_commands() == before


def test_200_concurrent_session_requests_use_at_most_store_max_connections(
    start_server: Callable[..., ServerProcess], store_server: StoreServer
) -> None:
    """A burst of 200 logged-in requests at once on one replica: every one is answered, and the
    replica opens no more store connections than STORE_MAX_CONNECTIONS (one per request would
    be 200, and a few bursty replicas would exhaust the store's maxclients)."""
    gate = TcpGate(store_server.port)
    gate.open()
    # Job locks in a Redis-family store have their own small pools (JOBS_MAX_CONNECTIONS): sent
    # past the gate, so that it counts the sessions' connections alone. Elsewhere (no jobs, or
    # locks in PostgreSQL) the variable is not read.
    locks = {"LOCK_URL": store_server.url} if store_server.SCHEME != "memcached" else {}
    try:
        replica = start_server(
            STORE_URL=gate.redirect(store_server.url),
            STORE_MAX_CONNECTIONS="4",
            STORE_TIMEOUT_SECONDS="5",
            SECRET_KEY=KEY,
            KEY_NAMESPACE="burst-test",
            **locks,
        )
        with httpx2.Client(timeout=10, verify=TLS_CONTEXT) as client:
            assert client.post(replica.base_url + "/session/login", json=LOGIN).status_code == 200
            cookies = dict(client.cookies)

        async def burst() -> list[int]:
            limits = httpx2.Limits(max_connections=200)
            async with httpx2.AsyncClient(
                timeout=30, verify=TLS_CONTEXT, limits=limits, cookies=cookies
            ) as client:
                url = replica.base_url + "/session/whoami"
                answers = await asyncio.gather(*(client.get(url) for _ in range(200)))
            return [answer.status_code for answer in answers]

        statuses = asyncio.run(burst())
    finally:
        gate.close()
    assert statuses == [200] * 200
    print(f"store connections opened by one replica under 200 concurrent requests: {gate.accepted}")
    assert 1 <= gate.accepted <= 4, f"{gate.accepted} store connections for a cap of 4"
