"""1. Sessions: one client's requests land on every replica and never lose the session."""

from collections import Counter

import httpx2
import pytest

from ..support.server import TLS_CONTEXT
from .client import login
from .harness import Cluster
from .report import ClusterReport

pytestmark = pytest.mark.cluster
REQUESTS = 200


def test_a_session_survives_requests_spread_over_every_replica(
    cluster: Cluster, cluster_report: ClusterReport
) -> None:
    url = cluster.balancer.base_url
    cookie = login(url)
    served_by: Counter[str] = Counter()
    misses = 0
    with httpx2.Client(timeout=5, headers=cookie, verify=TLS_CONTEXT) as client:
        for _ in range(REQUESTS):
            response = client.get(url + "/session/whoami")
            served_by[response.headers.get("x-served-by", "?")] += 1
            if response.status_code != 200 or response.json() != {"user": "demo"}:
                misses += 1
    cluster_report.session_requests += REQUESTS
    cluster_report.session_misses += misses
    cluster_report.replicas_reached = len(served_by)
    assert set(served_by) == {r.name for r in cluster.replicas}, (
        f"the balancer did not reach every replica: {dict(served_by)}"
    )
    assert misses == 0, f"{misses} of {REQUESTS} requests lost the session ({dict(served_by)})"
