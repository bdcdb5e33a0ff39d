"""5. Dependency outage: the store goes away, readiness (not liveness) fails everywhere, and
every replica recovers on its own when the store is back."""

import time

import pytest

from ..support.server import wait_until
from .harness import Cluster
from .report import ClusterReport

pytestmark = pytest.mark.cluster


def test_store_outage_fails_readiness_not_liveness_and_recovers(
    cluster: Cluster, cluster_report: ClusterReport
) -> None:
    pids = [r.process.pid for r in cluster.replicas if r.process]
    cluster.store.stop()
    wait_until(lambda: all(r.status("/readyz") == 503 for r in cluster.replicas), timeout=20)
    assert [r.status("/livez") for r in cluster.replicas] == [200] * len(cluster.replicas)

    cluster.store.start()
    started = time.monotonic()
    wait_until(lambda: all(r.status("/readyz") == 200 for r in cluster.replicas), timeout=30)
    cluster_report.recovery_seconds = time.monotonic() - started
    assert [r.process.pid for r in cluster.replicas if r.process] == pids, "a replica restarted"
    # The balancer takes replicas back only after its next health checks: the tests after this
    # one start from a cluster whose every replica is in rotation again.
    for replica in cluster.replicas:
        cluster.wait_in_rotation(replica, timeout=30)
