"""9. Secret rotation: a new SECRET_KEY rolled out in two rolling updates logs nobody out.

Step 1 gives every replica the new key as a fallback (they still sign with the old one); step 2
makes it current with the old one as the fallback. Logged-in users keep calling through the
balancer during both, their cookies re-signed on the way as a browser would keep them; a URL
signed before the rotation keeps working. Retiring the old key on one replica at the end shows
what the fallbacks prevented: there, the cookie as it was before the rotation is refused.
"""

import secrets
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx2
import pytest

from ..support.server import TLS_CONTEXT
from .client import cookie_header, login
from .harness import Cluster, Replica
from .report import ClusterReport

pytestmark = pytest.mark.cluster
USERS = 3
PAUSE_SECONDS = 0.05  # between one user's requests: about 20 per second each


@dataclass
class User:
    """A logged-in browser: it sends its cookie and keeps whatever cookie it is sent back."""

    cookie: dict[str, str]
    answers: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def ask(self, client: httpx2.Client, url: str) -> None:
        try:
            response = client.get(url, headers=self.cookie)
        except httpx2.TransportError as exc:
            self.failures.append(type(exc).__name__)
            return
        self.answers[response.status_code] += 1
        if response.status_code != 200:
            served_by = response.headers.get("x-served-by", "the balancer")
            self.failures.append(f"{response.status_code} from {served_by}: {response.text[:200]}")
        if "set-cookie" in response.headers:
            self.cookie = cookie_header(response, self.cookie)


def keep_asking(user: User, url: str, stop: threading.Event) -> None:
    with httpx2.Client(timeout=5, verify=TLS_CONTEXT) as client:
        while not stop.is_set():
            user.ask(client, url)
            time.sleep(PAUSE_SECONDS)


def roll(cluster: Cluster, change: dict[str, str]) -> list[int]:
    """One rolling update: every replica in turn restarted with ``change`` in its environment."""
    exit_codes = []
    for replica in cluster.replicas:
        replica.env.update(change)
        exit_codes.append(cluster.restart(replica))
    return exit_codes


def sign_a_url(cluster: Cluster, cookie: dict[str, str]) -> str:
    """Store an object through the balancer and sign a GET URL for it."""
    base = cluster.balancer.base_url
    put = httpx2.put(
        base + "/files/objects/cluster-suite/rotation.txt",
        content=b"signed before the rotation",
        headers={**cookie, "Content-Type": "text/plain"},
        timeout=10,
        verify=TLS_CONTEXT,
    )
    assert put.status_code == 201, f"upload failed: {put.status_code} {put.text}"
    signed = httpx2.post(
        base + "/files/signed-urls",
        json={"key": "cluster-suite/rotation.txt", "method": "GET"},
        headers=cookie,
        timeout=10,
        verify=TLS_CONTEXT,
    )
    assert signed.status_code == 200, f"signing failed: {signed.status_code} {signed.text}"
    url: str = signed.json()["url"]
    return url


def fetch_signed(cluster: Cluster, url: str) -> dict[str, int]:
    """The signed URL fetched without credentials: from every replica when the service serves
    it (a local directory), else from the storage provider it points to."""
    if not url.startswith("/"):
        return {"provider": httpx2.get(url, timeout=10, verify=TLS_CONTEXT).status_code}
    return {replica.name: replica.get(url).status_code for replica in cluster.replicas}


def whoami_on(replica: Replica, cookie: dict[str, str]) -> int:
    return replica.get("/session/whoami", headers=cookie).status_code


def test_rotating_the_secret_key_in_two_rolling_updates_logs_nobody_out(
    cluster: Cluster, cluster_report: ClusterReport
) -> None:
    old_key = cluster.replicas[0].env["SECRET_KEY"]
    new_key = secrets.token_urlsafe(48)
    users = [User(login(cluster.balancer.base_url)) for _ in range(USERS)]
    cookies_before = [user.cookie for user in users]
    signed_url = sign_a_url(cluster, users[0].cookie)

    stop = threading.Event()
    url = cluster.balancer.base_url + "/session/whoami"
    with ThreadPoolExecutor(USERS) as pool:
        asking = [pool.submit(keep_asking, user, url, stop) for user in users]
        try:
            time.sleep(0.5)  # users are active before the first replica goes
            exit_codes = roll(cluster, {"SECRET_KEY_FALLBACKS": new_key})
            exit_codes += roll(cluster, {"SECRET_KEY": new_key, "SECRET_KEY_FALLBACKS": old_key})
            time.sleep(1.0)  # every user asks the rotated replicas at least once
        finally:
            stop.set()
        for future in asking:
            future.result()

    answers = sum((user.answers for user in users), Counter[int]())
    failures = [failure for user in users for failure in user.failures]
    misses = sum(count for status, count in answers.items() if status != 200)
    errors = [failure for failure in failures if not failure[:3].isdigit()]
    signed_after = fetch_signed(cluster, signed_url)
    cluster_report.rotation_requests += sum(answers.values()) + len(errors)
    cluster_report.rotation_misses += misses + len(errors)
    cluster_report.rotation_signed_urls_refused += sum(s != 200 for s in signed_after.values())

    assert exit_codes == [0] * len(exit_codes), f"a replica did not drain cleanly: {exit_codes}"
    assert answers[200] > 0 and not failures, (
        f"the rotation logged users out or failed requests: answers {dict(answers)}, "
        f"failures {Counter(failures)}"
    )
    resent = [after.cookie != before for after, before in zip(users, cookies_before, strict=True)]
    assert all(resent), "a cookie signed with the old key was not sent back signed with the new one"
    assert set(signed_after.values()) == {200}, (
        f"a URL signed before the rotation was refused after it: {signed_after}"
    )

    # What the fallbacks prevented: r1 with the new key alone refuses the cookie as it was.
    first = cluster.replicas[0]
    first.env.pop("SECRET_KEY_FALLBACKS")
    cluster.restart(first)
    assert whoami_on(first, cookies_before[0]) == 401, "a retired key still signs in"
    assert whoami_on(first, users[0].cookie) == 200, "the re-signed cookie was refused"
