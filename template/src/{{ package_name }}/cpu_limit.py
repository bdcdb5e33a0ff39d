"""How many CPUs this process may use: its CPU affinity, capped by the container's CPU quota.

The quota is the cgroup's (cgroup v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us`` over
``cpu.cfs_period_us``): what Kubernetes' ``resources.limits.cpu``, ``docker run --cpus`` and
Compose's ``cpus`` set. ``os.cpu_count()`` sees neither and reports the machine's cores.
"""

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup's quota allows (1.5 for "150000 100000"), or None without a quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1") or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None
    return int(quota) / int(period)


def available_cpus(root: Path = CGROUP_ROOT) -> float:
    """The CPUs this process may run on, at most its cgroup's quota."""
    if hasattr(os, "sched_getaffinity"):
        cpus = float(len(os.sched_getaffinity(0)))
    else:  # macOS: no affinity, no cgroups
        cpus = float(os.cpu_count() or 1)
    quota = cgroup_cpu_quota(root)
    return cpus if quota is None else min(cpus, quota)
