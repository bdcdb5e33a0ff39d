"""4. Rolling restart under steady load: every replica in turn, no request fails."""

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import Cluster, steady_load
from .report import ClusterReport

pytestmark = pytest.mark.cluster
LOAD_THREADS = 2
RATE_PER_THREAD = 35.0


def test_rolling_restart_under_load_fails_no_request(
    cluster: Cluster, cluster_report: ClusterReport
) -> None:
    done = threading.Event()
    url = cluster.balancer.base_url + "/"
    with ThreadPoolExecutor(LOAD_THREADS) as pool:
        loads = [
            pool.submit(steady_load, url, done.is_set, RATE_PER_THREAD) for _ in range(LOAD_THREADS)
        ]
        exit_codes = []
        try:
            time.sleep(1.0)  # traffic flows before the first replica goes
            for replica in cluster.replicas:
                exit_codes.append(cluster.restart(replica))
            time.sleep(1.0)  # and after the last one is back
        finally:
            done.set()
        results = [future.result() for future in loads]
    sent = sum(r.sent for r in results)
    failed = sum(r.failed for r in results)
    rate = sum(r.rate for r in results)
    cluster_report.requests_sent += sent
    cluster_report.requests_failed += failed
    cluster_report.restarts += len(exit_codes)
    cluster_report.restart_errors += sum(1 for code in exit_codes if code != 0)
    cluster_report.load_rate_per_second = rate
    assert exit_codes == [0] * len(cluster.replicas), f"exit codes on SIGTERM: {exit_codes}"
    assert rate >= 50, f"the load loop only reached {rate:.0f} req/s"
    failures = Counter(f for r in results for f in r.failures)
    assert failed == 0, f"{failed} of {sent} requests failed during the restart: {dict(failures)}"
