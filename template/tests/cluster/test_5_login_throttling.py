"""5. Login throttling: wrong passwords spread over every replica hit one limit, not one each."""

import importlib
import secrets
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from ..conftest import SERVICE_PACKAGE
from ..support.server import TLS_CONTEXT
from .harness import Cluster

pytestmark = pytest.mark.cluster
CONCURRENCY = 12
# A failed login may cost a password hash (Django's PBKDF2: about 0.35 s of CPU); up to the
# limit's worth of them run at once, on a test machine shared with other suites. The test is
# about counts, not latency, so a slow answer is waited for.
LOGIN_TIMEOUT = 120


def default(setting: str) -> int:
    """The limit every replica runs with (the suite keeps the service's defaults)."""
    settings = importlib.import_module(f"{SERVICE_PACKAGE}.config").Settings
    value: int = settings.model_fields[setting].default
    return value


def in_one_window(
    window_setting: str, batch: Callable[[], tuple[Counter[int], set[str]]]
) -> tuple[Counter[int], set[str]]:
    """Run ``batch`` so that it falls inside one fixed counting window.

    The counters live in windows aligned to the clock; a batch that straddles a boundary is
    counted in two windows and may pass twice the limit, which is the design, not a defect.
    Such a batch is run once more with fresh keys: the next boundary is a whole window away.
    """
    window = default(window_setting)
    for _ in range(2):
        started_in = time.time() // window
        outcome = batch()
        if time.time() // window == started_in:
            return outcome
    raise AssertionError(f"two batches in a row straddled a {window} s window boundary")


def spread(cluster: Cluster, attempts: list[tuple[str, str]]) -> tuple[Counter[int], set[str]]:
    """Wrong-password logins, as (username, client address), sent at once through the balancer.
    The replicas trust the balancer's X-Forwarded-For, so each attempt comes from its address."""
    url = cluster.balancer.base_url + "/session/login"

    def send(client: httpx2.Client, username: str, address: str) -> httpx2.Response:
        credentials = {"username": username, "password": secrets.token_urlsafe(8)}
        return client.post(url, json=credentials, headers={"X-Forwarded-For": address})

    with (
        httpx2.Client(timeout=LOGIN_TIMEOUT, verify=TLS_CONTEXT) as client,
        ThreadPoolExecutor(CONCURRENCY) as pool,
    ):
        responses = list(pool.map(lambda a: send(client, *a), attempts))
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
    statuses = Counter(r.status_code for r in responses)
    return statuses, {r.headers.get("x-served-by", "?") for r in responses}


def test_one_account_guessed_from_many_addresses_is_limited_globally(cluster: Cluster) -> None:
    limit = default("login_account_max_failures")
    attempts_count = limit * 4

    def batch() -> tuple[Counter[int], set[str]]:
        account = f"victim-{secrets.token_hex(4)}"
        attempts = [(account, f"198.51.100.{i % 250 + 1}") for i in range(attempts_count)]
        return spread(cluster, attempts)

    statuses, served_by = in_one_window("login_account_window_seconds", batch)
    assert served_by == {r.name for r in cluster.replicas}, f"not every replica: {served_by}"
    assert statuses == {401: limit, 429: attempts_count - limit}, (
        f"login throttling per account does not hold across replicas: {dict(statuses)} for "
        f"{attempts_count} attempts, limit {limit}"
    )


def test_one_address_trying_many_accounts_is_limited_globally(cluster: Cluster) -> None:
    limit = default("login_client_max_failures")
    attempts_count = limit + 30

    def batch() -> tuple[Counter[int], set[str]]:
        address = f"203.0.113.{secrets.randbelow(250) + 1}"
        attempts = [(f"user-{secrets.token_hex(6)}", address) for _ in range(attempts_count)]
        return spread(cluster, attempts)

    statuses, served_by = in_one_window("login_client_window_seconds", batch)
    assert served_by == {r.name for r in cluster.replicas}, f"not every replica: {served_by}"
    assert statuses == {401: limit, 429: attempts_count - limit}, (
        f"login throttling per client does not hold across replicas: {dict(statuses)} for "
        f"{attempts_count} attempts, limit {limit}"
    )
