"""Tier 3: the cluster suite each rendered project ships (tests/cluster/, `pytest -m cluster`),
run for the default and a few other combinations, and run against deliberately broken
clusters, where it must fail on the property that was broken.

Run with `pytest -m tier3 -n 2` (tests/run.sh runs tiers 2 and 3 together).
"""

from __future__ import annotations

import json
import secrets
import shlex
from pathlib import Path
from typing import Any

import pytest
from combinations import answer_space
from helpers import interpreter_for, project_environment, require, run_step, uv_binary

pytestmark = pytest.mark.tier3

SPACE = answer_space()
# One project per framework (the default is FastAPI's), their other answers chosen so that
# between them they cover every storage provider, every scheduler, both store families (Valkey
# for Redis's), both lock backends and the database. The core serves each concern the same way
# under every framework; a framework's own adapters are what a second project per framework
# would add, and the contract suite of tier 2 runs those in every pair.
CLUSTER_COMBINATIONS: dict[str, dict[str, Any]] = {
    # FastAPI: S3, Redis (sessions, cache and locks), the in-process scheduler.
    "default": {},
    "litestar-gcs-valkey-celery-postgresql": {
        "framework": "litestar",
        "storage_provider": "gcs",
        "cache_backend": "valkey",
        "scheduler": "celery",
        "database": "postgresql",
    },
    "flask-azure-cronjob-postgresql": {
        "framework": "flask",
        "storage_provider": "azure",
        "scheduler": "cronjob",
        "database": "postgresql",
    },
    # Django's ORM, its pool and its migrations; Memcached, so the locks are PostgreSQL's.
    "django-local-memcached-postgresql": {
        "framework": "django",
        "storage_provider": "local",
        "cache_backend": "memcached",
        "database": "postgresql",
    },
}
# Broken clusters: the project, the replicas' environment, the check that must fail, its message.
BROKEN: dict[str, tuple[dict[str, Any], dict[str, Any], str, str]] = {
    # Development profile without STORE_URL: every replica keeps sessions in its own memory.
    "in-memory-sessions": (
        {},
        {"CLUSTER_ENV": {"APP_ENV": "development", "STORE_URL": None}},
        "test_1_sessions.py",
        "lost the session",
    ),
    # Replica r2 signs sessions with a key of its own.
    "drifted-secret-key": (
        {},
        {"CLUSTER_REPLICA_ENV": [{}, {"SECRET_KEY": secrets.token_urlsafe(48)}]},
        "test_2_config_drift.py",
        "r2 rejects a session issued by r1",
    ),
    # Locks in each replica's memory: every replica runs every tick.
    "in-process-locks": (
        {},
        {"CLUSTER_ENV": {"APP_ENV": "development", "LOCK_URL": "memory://"}},
        "test_4_jobs.py",
        "ticks started more than once",
    ),
    # Replica r2 keeps files in a directory of its own, not on the shared volume.
    "unshared-directory": (
        {"storage_provider": "local"},
        {"CLUSTER_REPLICA_ENV": [{}, {"STORAGE_LOCAL_PATH": "{tmp}/r2-private-files"}]},
        "test_3_files.py",
        "the uploaded file is not served by",
    ),
    # Replica r2 reads a flag file of its own (the project's copy), not the shared one.
    "unshared-flag-file": (
        {},
        {"CLUSTER_REPLICA_ENV": [{}, {"FEATURE_FLAGS_FILE": "deploy/flags/flags.json"}]},
        "test_10_feature_flags.py",
        "did not follow the flag",
    ),
}


def _project(renderer: Any, tmp_path: Path, overrides: dict[str, Any]) -> tuple[Path, dict]:
    uv = require(uv_binary(), "uv")
    combo = SPACE.default_combination()
    data = {**combo.data, **overrides}
    python = require(interpreter_for(str(SPACE.answers_with(data)["python_version"])), "Python")
    project = renderer(data, tmp_path / "project")
    env = project_environment(python)
    elapsed, proc = run_step([uv, "sync", "-p", python], project, env)
    assert proc.returncode == 0, f"uv sync failed after {elapsed:.0f} s:\n{proc.stderr[-3000:]}"
    return project, env


def _cluster_suite(project: Path, env: dict[str, str], report: Path, *modules: str, **extra: Any):
    """The project's cluster suite, as its README runs it; only ``modules`` when given."""
    uv = require(uv_binary(), "uv")
    run_env = {**env, "CLUSTER_REPORT": str(report)}
    for name, value in extra.items():
        run_env[name] = json.dumps(value)
    paths = [f"tests/cluster/{module}" for module in modules]
    cmd = [uv, "run", "pytest", "-m", "cluster", "-p", "no:cacheprovider", "-rf", *paths]
    return run_step(cmd, project, run_env, timeout=600)


@pytest.mark.parametrize("name", CLUSTER_COMBINATIONS)
def test_cluster_suite_passes(
    name: str, renderer: Any, tmp_path: Path, record_property: Any
) -> None:
    overrides = CLUSTER_COMBINATIONS[name]
    project, env = _project(renderer, tmp_path, overrides)
    report_path = tmp_path / "cluster-report.json"
    elapsed, proc = _cluster_suite(project, env, report_path)
    assert proc.returncode == 0, (
        f"`{shlex.join(proc.args)}` exited {proc.returncode} after {elapsed:.0f} s\n"
        f"{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    )
    report = json.loads(report_path.read_text())
    record_property("tier3", {"id": name, **report})
    assert report["session_misses"] == 0 and report["requests_failed"] == 0
    assert report["rotation_requests"] > 0 and report["rotation_misses"] == 0
    assert report["rotation_signed_urls_refused"] == 0
    assert report["flag_replicas_followed"] == report["replicas"]
    assert report["flag_propagation_seconds"] > 0
    assert report["requests_sent"] > 0 and report["replicas_reached"] == report["replicas"] >= 3


@pytest.mark.parametrize("name", BROKEN)
def test_cluster_suite_catches_a_broken_cluster(name: str, renderer: Any, tmp_path: Path) -> None:
    """The broken property makes its own check fail, with a message that says what broke. Only
    that check's module runs: the suite's other checks are proven on working clusters above."""
    overrides, extra, failing_module, message = BROKEN[name]
    project, env = _project(renderer, tmp_path, overrides)
    extra = json.loads(json.dumps(extra).replace("{tmp}", str(tmp_path)))
    report = tmp_path / "report.json"
    _, proc = _cluster_suite(project, env, report, failing_module, **extra)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"{name}: the suite did not fail (exit {proc.returncode})"
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert any(failing_module in line for line in failed), f"{name}: {failed}\n{output[-4000:]}"
    assert message in output, f"{name}: no '{message}' in the output\n{output[-4000:]}"
