"""10. Feature flags: a flag flipped in the shared flag file reaches every replica, without a
restart, within the poll interval.

Every replica reads one file (the chart's ConfigMap, Compose's mount). The test flips the
``greeting`` flag's default variant and asks each replica directly, every 50 ms, until it answers
with the new variant: the time the last replica needs is the propagation time the report gives.
A replica that answered the new variant must never answer the old one again, and the
logged-in user, whom the file targets, gets the same variant from every replica throughout.
"""

import json
import os
import time
from pathlib import Path

import pytest

from .client import login
from .harness import Cluster
from .report import ClusterReport

pytestmark = pytest.mark.cluster
POLL_SECONDS = 5.0  # FEATURE_FLAGS_POLL_SECONDS: the replicas run with the default
# What asking adds to the poll interval on a loaded machine: a request, a scheduling delay.
SLACK_SECONDS = 5.0


def variant(answer: dict[str, object]) -> object:
    return answer.get("variant")


def flip_default_variant(path: Path, to: str) -> None:
    definitions = json.loads(path.read_text())
    definitions["flags"]["greeting"]["defaultVariant"] = to
    staging = path.with_suffix(".new")
    staging.write_text(json.dumps(definitions))
    os.replace(staging, path)  # as an editor or a ConfigMap update replaces it


def test_a_flipped_flag_reaches_every_replica_within_the_poll_interval(
    cluster: Cluster, cluster_report: ClusterReport
) -> None:
    flags_file = Path(cluster.replicas[0].env["FEATURE_FLAGS_FILE"])
    cookie = login(cluster.balancer.base_url)
    for replica in cluster.replicas:
        assert variant(replica.get("/features/greeting").json()) == "classic", replica.name
        assert variant(replica.get("/features/greeting", cookie).json()) == "friendly"

    flip_default_variant(flags_file, "friendly")
    flipped = time.monotonic()
    followed: dict[str, float] = {}
    went_back: list[str] = []
    targeted: set[object] = set()
    deadline = flipped + POLL_SECONDS + SLACK_SECONDS
    while len(followed) < len(cluster.replicas) and time.monotonic() < deadline:
        for replica in cluster.replicas:
            answer = variant(replica.get("/features/greeting").json())
            if answer == "friendly":
                followed.setdefault(replica.name, time.monotonic() - flipped)
            elif replica.name in followed:
                went_back.append(replica.name)
            targeted.add(variant(replica.get("/features/greeting", cookie).json()))
        time.sleep(0.05)
    try:
        lagging = [r.name for r in cluster.replicas if r.name not in followed]
        assert not lagging, (
            f"{lagging} did not follow the flag within {POLL_SECONDS + SLACK_SECONDS:g} s "
            f"(followed: {followed})"
        )
        assert went_back == [], f"replicas answered the old variant again: {went_back}"
        assert targeted == {"friendly"}, f"the targeted user got {targeted}"
    finally:
        flip_default_variant(flags_file, "classic")
    cluster_report.flag_replicas_followed = len(followed)
    cluster_report.flag_propagation_seconds = max(followed.values())
    print(f"\nflag followed by {len(followed)} replicas after {sorted(followed.values())} s")
