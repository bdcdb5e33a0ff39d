"""2. Files: an object uploaded through the balancer is served by every replica directly."""

import os

import httpx2
import pytest

from ..support.server import TLS_CONTEXT
from .client import login
from .harness import Cluster
from .report import ClusterReport

pytestmark = pytest.mark.cluster
SIZE = 512 * 1024


def test_an_upload_through_the_balancer_is_served_by_every_replica(
    cluster: Cluster, cluster_report: ClusterReport
) -> None:
    cookie = login(cluster.balancer.base_url)
    body = os.urandom(SIZE)
    upload = httpx2.put(
        cluster.balancer.base_url + "/files/objects/cluster-suite/upload.bin",
        content=body,
        headers={**cookie, "Content-Type": "application/octet-stream"},
        timeout=30,
        verify=TLS_CONTEXT,
    )
    assert upload.status_code == 201, f"upload failed: {upload.status_code} {upload.text}"
    missing = []
    for replica in cluster.replicas:
        download = replica.get("/files/objects/cluster-suite/upload.bin", headers=cookie)
        if download.status_code != 200 or download.content != body:
            missing.append(f"{replica.name} (HTTP {download.status_code})")
    cluster_report.files_uploaded += 1
    cluster_report.files_missing += len(missing)
    assert not missing, f"the uploaded file is not served by: {', '.join(missing)}"
