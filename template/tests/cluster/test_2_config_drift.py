"""6. Configuration drift: every replica must accept a session issued by any other.

Replicas that disagree on SECRET_KEY (or on STORE_URL or KEY_NAMESPACE) reject each other's
sessions: users are logged out whenever the balancer switches replica.
"""

import pytest

from .client import login
from .harness import Cluster

pytestmark = pytest.mark.cluster


def test_replicas_share_the_secret_key_and_the_store(cluster: Cluster) -> None:
    disagreements = []
    for issuer in cluster.replicas:
        cookie = login(issuer.base_url)
        for other in cluster.replicas:
            status = other.get("/session/whoami", headers=cookie).status_code
            if status != 200:
                disagreements.append(
                    f"{other.name} rejects a session issued by {issuer.name} (HTTP {status})"
                )
    assert not disagreements, (
        "configuration drift between replicas: SECRET_KEY, STORE_URL or KEY_NAMESPACE differ: "
        + "; ".join(disagreements)
    )
