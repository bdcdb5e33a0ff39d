"""5. The internal port: metrics and admin routes never go through the public balancer.

Every replica serves /metrics on its ADMIN_PORT (what Prometheus scrapes inside the cluster);
through the balancer, as through each replica's public port, /metrics and /jobs do not exist.
"""

import httpx2
import pytest

from ..support.server import TLS_CONTEXT
from .harness import Cluster

pytestmark = pytest.mark.cluster

INTERNAL_PATHS = ("/metrics", "/jobs")


def test_metrics_and_admin_answer_on_the_internal_port_only(cluster: Cluster) -> None:
    public = {
        path: httpx2.get(
            cluster.balancer.base_url + path, timeout=5, verify=TLS_CONTEXT
        ).status_code
        for path in INTERNAL_PATHS
    }
    assert public == dict.fromkeys(INTERNAL_PATHS, 404), "the balancer routes internal paths"
    for replica in cluster.replicas:
        assert replica.get("/metrics").status_code == 404, replica.name
        scraped = httpx2.get(replica.admin_url + "/metrics", timeout=5, verify=TLS_CONTEXT)
        assert scraped.status_code == 200, replica.name
        assert "http_requests_total" in scraped.text
        assert (
            httpx2.get(
                replica.admin_url + "/session/whoami", timeout=5, verify=TLS_CONTEXT
            ).status_code
            == 404
        )
