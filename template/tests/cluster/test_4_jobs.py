"""3. Jobs: every replica runs the scheduler; each tick runs once, also after a SIGKILL.

Executions are read from the replicas' own JSON logs ("job started" with the tick's idempotency
key), so a double start is counted even if the ledger then refuses its effect.
"""

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from ..support.jobs_fixtures import CLUSTER_LOCK_TTL_SECONDS, CLUSTER_TICK_SECONDS
from ..support.server import json_log_lines, wait_until
from .harness import Cluster
from .report import ClusterReport

pytestmark = pytest.mark.cluster
JOB = "rollup_events"
TICKS = 10


def job_starts(cluster: Cluster) -> list[tuple[str, str]]:
    """(replica, idempotency key) of every start of the job, from every replica's log."""
    starts = []
    for replica in cluster.replicas:
        for entry in json_log_lines(replica.log_path):
            if entry.get("event") == "job started" and entry.get("job") == JOB:
                starts.append((replica.name, str(entry["idempotency_key"])))
    return starts


def tick_time(key: str) -> datetime:
    return datetime.strptime(key.partition("@")[2], "%Y%m%dT%H%M%S.%fZ")


def ticks_started(cluster: Cluster) -> set[str]:
    return {key for _, key in job_starts(cluster)}


def test_each_tick_runs_once_across_replicas_also_after_a_sigkill(
    cluster: Cluster, cluster_report: ClusterReport
) -> None:
    before = ticks_started(cluster)
    wait_until(lambda: len(ticks_started(cluster) - before) >= TICKS // 2, timeout=TICKS * 4)

    # SIGKILL the replica that started the latest tick, then see the next ticks run once.
    last_runner = job_starts(cluster)[-1][0]
    victim = next(r for r in cluster.replicas if r.name == last_runner)
    victim.kill()
    killed_time = datetime.now(UTC).replace(tzinfo=None)  # tick keys are naive UTC
    killed_at = ticks_started(cluster)
    wait_until(lambda: len(ticks_started(cluster) - killed_at) >= TICKS // 2, timeout=TICKS * 4)
    victim.start()
    wait_until(victim.ready, timeout=60)
    cluster.wait_in_rotation(victim)
    time.sleep(CLUSTER_TICK_SECONDS)  # the tick in progress finishes and is logged

    starts = [key for _, key in job_starts(cluster) if key not in before]
    executions = Counter(starts)
    duplicates = {key: n for key, n in executions.items() if n > 1}
    times = sorted(tick_time(key) for key in executions)
    ticks = round((times[-1] - times[0]).total_seconds() / CLUSTER_TICK_SECONDS) + 1
    cluster_report.ticks += ticks
    cluster_report.executions += len(starts)
    cluster_report.duplicates += sum(n - 1 for n in duplicates.values())
    assert ticks >= TICKS
    assert not duplicates, f"ticks started more than once: {duplicates}"
    # A holder killed while running keeps the job's lock until its TTL ends: the ticks due in
    # that window are skipped by design. Any other tick must have run.
    tick = timedelta(seconds=CLUSTER_TICK_SECONDS)
    expected = {times[0] + n * tick for n in range(ticks)}
    lock_held_from = killed_time - tick
    lock_held_until = killed_time + timedelta(seconds=CLUSTER_LOCK_TTL_SECONDS)
    missed = sorted(t for t in expected - set(times) if not lock_held_from <= t < lock_held_until)
    assert not missed, (
        f"{len(missed)} of {ticks} ticks never ran outside the killed holder's TTL: {missed}"
    )
    runners = {name for name, key in job_starts(cluster) if key in executions}
    assert len(runners) >= 2, f"only {runners} ran the job: the others never took the lock"
