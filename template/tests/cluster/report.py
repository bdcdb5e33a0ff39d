"""The numbers a cluster run reports at its end (terminal summary, and JSON on request)."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ClusterReport:
    replicas: int = 0
    requests_sent: int = 0
    requests_failed: int = 0
    session_requests: int = 0
    session_misses: int = 0
    replicas_reached: int = 0
    files_uploaded: int = 0
    files_missing: int = 0
    ticks: int = 0
    executions: int = 0
    duplicates: int = 0
    restarts: int = 0
    rotation_requests: int = 0
    rotation_misses: int = 0
    rotation_signed_urls_refused: int = 0
    restart_errors: int = 0
    flag_replicas_followed: int = 0
    flag_propagation_seconds: float = 0.0
    load_rate_per_second: float = 0.0
    recovery_seconds: float = 0.0
    wall_seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"replicas {self.replicas}, reached by the balancer {self.replicas_reached}",
            f"requests sent {self.requests_sent}, failed {self.requests_failed}",
            f"session requests {self.session_requests}, session misses {self.session_misses}",
            f"files uploaded {self.files_uploaded}, missing on a replica {self.files_missing}",
            f"ticks {self.ticks}, executions {self.executions}, duplicates {self.duplicates}",
            f"rolling restarts {self.restarts}, restart errors {self.restart_errors} "
            f"(load {self.load_rate_per_second:.0f} req/s)",
            f"secret rotation: session requests {self.rotation_requests}, misses "
            f"{self.rotation_misses}, signed URLs refused {self.rotation_signed_urls_refused}",
            f"feature flag flipped: {self.flag_replicas_followed} replicas followed, the last "
            f"after {self.flag_propagation_seconds:.2f} s",
            f"store outage recovery {self.recovery_seconds:.2f} s",
            f"wall time {self.wall_seconds:.1f} s",
        ]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
