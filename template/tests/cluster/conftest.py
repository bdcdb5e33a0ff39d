"""Fixtures of the cluster suite: the chosen store, replicas behind haproxy, and the report.

Run it with ``uv run pytest -m cluster`` (see README: Cluster suite). Two variables change the
replicas' environment, for proving that the suite catches a broken cluster:
``CLUSTER_ENV`` (a JSON object applied to every replica) and ``CLUSTER_REPLICA_ENV`` (a JSON
list of objects, the first for replica r1, ...); a null value unsets a variable.
"""

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import SERVICE_PACKAGE, SETTING_NAMES, STORE_SERVER
from ..support.server import CLUSTER_REQUIREMENTS, require_binary
from .client import DEMO_PASSWORD
from .harness import DRAIN_SECONDS, GRACE_SECONDS, Cluster
from .report import ClusterReport

REPORT = ClusterReport()
SHIPPED_FLAGS = Path(__file__).resolve().parents[2] / "deploy" / "flags" / "flags.json"
_STARTED_AT: list[float] = []


def base_environment(run_dir: Path, store_url: str) -> dict[str, str]:
    """Production settings shared by every replica, as one Deployment would give them."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in SETTING_NAMES and not name.startswith("OTEL_")
    }
    secrets_dir = run_dir / "no-secrets"
    secrets_dir.mkdir(exist_ok=True)
    # One flag file every replica reads, as the chart's ConfigMap or Compose's mount gives it.
    flags_dir = run_dir / "flags"
    flags_dir.mkdir(exist_ok=True)
    shutil.copy(SHIPPED_FLAGS, flags_dir / "flags.json")
    return {
        **inherited,
        "APP_ENV": "production",
        "HOST": "127.0.0.1",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SECRETS_DIR": str(secrets_dir),
        "STORE_URL": store_url,
        "KEY_NAMESPACE": f"cluster-{secrets.token_hex(4)}",
        "LOG_FORMAT": "json",
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "OTEL_TRACES_EXPORTER": "none",  # tracing, when generated, is not under test here
        "FEATURE_FLAGS_FILE": str(flags_dir / "flags.json"),
    }


def _json_env(name: str, default: Any) -> Any:
    raw = os.environ.get(name)
    return json.loads(raw) if raw else default


@pytest.fixture(scope="package")
def cluster_report() -> ClusterReport:
    return REPORT


@pytest.fixture(scope="package")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    _STARTED_AT.append(time.monotonic())
    haproxy = require_binary(shutil.which("haproxy"))
    run_dir = tmp_path_factory.mktemp("cluster")
    (run_dir / "store").mkdir()
    store = STORE_SERVER(run_dir / "store")
    store.start()
    env = base_environment(run_dir, store.url)
    for requirement in CLUSTER_REQUIREMENTS:
        env.update(requirement(request))
    env.update(_json_env("CLUSTER_ENV", {}))
    replica_env = _json_env("CLUSTER_REPLICA_ENV", [])
    cluster = Cluster(run_dir, SERVICE_PACKAGE, store, haproxy, env, replica_env)
    REPORT.replicas = len(cluster.replicas)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        store.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _STARTED_AT:
        return
    REPORT.wall_seconds = time.monotonic() - _STARTED_AT[0]
    terminalreporter.section("cluster report")
    for line in REPORT.lines():
        terminalreporter.write_line(line)
    if path := os.environ.get("CLUSTER_REPORT"):
        REPORT.write(Path(path))
