"""The Compose file and the HAProxy configuration of the balancer."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from deploy_checks.common import MIN_SHUTDOWN_MARGIN_SECONDS, read_yaml, schema_problems

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _seconds(value: str | int | float) -> float:
    if isinstance(value, int | float):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)(ms|s|m|h)", value):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def _waits_for(
    services: Mapping[str, Any], name: str, target: str, seen: frozenset = frozenset()
) -> bool:
    """Whether service `name` starts only after `target` is healthy (directly, or through a
    one-shot that waited for it and completed)."""
    for dependency, spec in services.get(name, {}).get("depends_on", {}).items():
        condition = spec.get("condition") if isinstance(spec, Mapping) else None
        if dependency == target and condition == "service_healthy":
            return True
        if (
            condition == "service_completed_successfully"
            and dependency not in seen
            and _waits_for(services, dependency, target, seen | {name})
        ):
            return True
    return False


def compose_storage_problems(compose: Mapping[str, Any], app: Mapping[str, Any]) -> list[str]:
    """Files every replica sees: a shared directory is one named volume mounted by every
    replica; an object storage endpoint is a service of the file, healthy before the replicas."""
    problems: list[str] = []
    services = compose.get("services", {})
    env = app.get("environment", {})
    if str(env.get("STORAGE_LOCAL_SHARED", "false")).lower() == "true":
        path = env.get("STORAGE_LOCAL_PATH")
        named = set(compose.get("volumes") or {})
        mounts = [str(v) for v in app.get("volumes", [])]
        if not any(m.split(":")[0] in named and m.split(":")[1] == path for m in mounts):
            problems.append(f"STORAGE_LOCAL_PATH {path} is not a named volume mounted by app")
        if any(m.endswith(":ro") for m in mounts if m.split(":")[1:2] == [path]):
            problems.append("the shared files volume is mounted read-only")
    elif "STORAGE_LOCAL_PATH" in env and "STORAGE_BUCKET" not in env:
        problems.append(
            "app stores files in a directory not declared shared (STORAGE_LOCAL_SHARED)"
        )
    endpoint = re.match(r"https?://([^:/]+)", str(env.get("STORAGE_ENDPOINT_URL", "")))
    if endpoint and endpoint.group(1) not in {"127.0.0.1", "localhost"}:
        host = endpoint.group(1)
        if host not in services:
            problems.append(f"STORAGE_ENDPOINT_URL names {host}, which is not a service")
        elif not _waits_for(services, "app", host):
            problems.append(f"app does not wait for a healthy storage service {host}")
    return problems


def compose_job_problems(services: Mapping[str, Any]) -> list[str]:
    """Celery: a worker with its ping health check next to exactly one beat."""
    problems: list[str] = []
    by_command: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for name, service in services.items():
        for word in service.get("command") or []:
            by_command.setdefault(str(word), []).append((name, service))
    workers, beats = by_command.get("celery-worker", []), by_command.get("celery-beat", [])
    if bool(workers) != bool(beats):
        problems.append("a Celery beat needs a worker and a worker a beat")
    for name, service in beats:
        if str(service.get("deploy", {}).get("replicas", 1)) != "1":
            problems.append(f"{name} runs more than one Celery beat")
    for name, service in workers:
        if "--ping" not in service.get("healthcheck", {}).get("test", []):
            problems.append(f"{name}: the Celery worker's health check is not its --ping")
    return problems


def compose_store_problems(services: Mapping[str, Any]) -> list[str]:
    """The shared store holds the sessions: it runs with a memory bound and never evicts (Redis
    and Valkey: ``--maxmemory`` + ``--maxmemory-policy noeviction``; Memcached: ``-m`` + ``-M``)."""
    store = services.get("store")
    if store is None:
        return ["compose.yaml has no store service"]
    command = [str(word) for word in store.get("command") or []]

    def value_after(flag: str) -> str | None:
        return (
            command[command.index(flag) + 1]
            if command.count(flag) == 1 and command[-1] != flag
            else None
        )

    if "memcached" in str(store.get("image", "")):
        if "-M" not in command or not value_after("-m"):
            return ["store: memcached runs without -m <MB> and -M (it evicts sessions when full)"]
        return []
    problems = []
    if not value_after("--maxmemory"):
        problems.append("store: no --maxmemory bound (the store grows until the host kills it)")
    if value_after("--maxmemory-policy") != "noeviction":
        problems.append("store: --maxmemory-policy is not noeviction (sessions can be evicted)")
    return problems


def compose_flag_problems(project: Path, services: Mapping[str, Any]) -> list[str]:
    """Every service reading FEATURE_FLAGS_FILE mounts, read-only, the project directory that
    holds the file (a directory: a single-file bind mount keeps the old file after an editor
    replaces it), and the project's file there is flag definitions."""
    problems: list[str] = []
    for name, service in services.items():
        flags_file = (service.get("environment") or {}).get("FEATURE_FLAGS_FILE")
        if not flags_file:
            continue
        target_dir = str(PurePosixPath(flags_file).parent)
        mounts = [str(v).split(":") for v in service.get("volumes") or [] if isinstance(v, str)]
        sources = [m[0] for m in mounts if len(m) >= 2 and m[1] == target_dir]
        if len(sources) != 1 or not sources[0].startswith("./"):
            problems.append(f"{name}: no bind mount of a project directory at {target_dir}")
            continue
        if not any(m[1] == target_dir and m[2:] == ["ro"] for m in mounts):
            problems.append(f"{name}: the flags directory is not mounted read-only")
        source = project / sources[0] / PurePosixPath(flags_file).name
        try:
            definitions = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            problems.append(f"{name}: {source} is not a readable JSON file: {error}")
            continue
        if not isinstance(definitions, dict) or not isinstance(definitions.get("flags"), dict):
            problems.append(f'{name}: {source} has no "flags" object')
    return problems


def check_compose(compose_path: str, haproxy_path: str | None) -> list[str]:
    compose = read_yaml(Path(compose_path))
    problems = schema_problems(compose, "compose-spec")
    services = compose.get("services", {})
    app, lb = services.get("app"), services.get("lb")
    if not app or not lb:
        return [*problems, "compose.yaml needs the services app and lb (balancer)"]
    if "replicas" not in app.get("deploy", {}):
        problems.append("app has no deploy.replicas")
    for name, service in services.items():
        if service.get("restart") != "no" and "healthcheck" not in service:
            problems.append(f"service {name} has no healthcheck")
    if lb.get("depends_on", {}).get("app", {}).get("condition") != "service_healthy":
        problems.append("lb does not wait for healthy app replicas")
    if app.get("ports"):
        problems.append("app publishes ports: only the balancer may")
    env = app.get("environment", {})
    if "DATABASE_URL" in env:
        migrate = services.get("migrate", {})
        if migrate.get("command") != ["migrate"]:
            problems.append("no one-shot migrate service running `migrate`")
        condition = app.get("depends_on", {}).get("migrate", {}).get("condition")
        if condition != "service_completed_successfully":
            problems.append("app does not wait for migrate to complete successfully")
        if "migrate" in app.get("command", []):
            problems.append("app migrates at start")
    problems += compose_storage_problems(compose, app)
    problems += compose_job_problems(services)
    problems += compose_store_problems(services)
    problems += compose_flag_problems(Path(compose_path).parent, services)
    shutdown = float(env.get("SHUTDOWN_DRAIN_SECONDS", 5)) + float(
        env.get("SHUTDOWN_GRACE_SECONDS", 20)
    )
    if _seconds(app.get("stop_grace_period", "10s")) < shutdown + MIN_SHUTDOWN_MARGIN_SECONDS:
        problems.append(
            f"app stop_grace_period is shorter than drain + grace ({shutdown:g} s) + margin"
        )
    if haproxy_path:
        cfg = Path(haproxy_path).read_text(encoding="utf-8")
        problems += haproxy_problems(cfg, app, lb)
        lb_env = {
            name: _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))
            for name, value in (lb.get("environment") or {}).items()
        }
        haproxy = shutil.which("haproxy")
        if haproxy:
            result = subprocess.run(
                [haproxy, "-c", "-q", "-f", haproxy_path],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, **lb_env},
            )
            if result.returncode:
                problems.append(f"haproxy -c failed: {result.stdout}{result.stderr}".strip())
        else:
            problems.append(
                "haproxy is not installed (apt-get install haproxy): cannot check haproxy.cfg"
            )
    return problems


# Retry conditions after which the request may have reached a replica (all but conn-failure).
_L7_RETRIES = re.compile(r"(?m)^\s*retry-on\s+(.*)$")
_SAFE_RETRY_ONLY = re.compile(
    r"(?m)^\s*http-request disable-l7-retry if !METH_GET( !METH_OPTIONS)?\s*$"
)


def haproxy_problems(cfg: str, app: Mapping[str, Any], lb: Mapping[str, Any]) -> list[str]:
    """The balancer reaches every replica, checks /readyz, and never repeats a request that may
    have been applied (a POST that timed out)."""
    problems: list[str] = []
    env = app.get("environment", {})
    target = re.search(r'server-template\s+\S+\s+("?\$\{(\w+)\}"?|\d+)\s+app:(\d+)', cfg)
    if not target or target.group(3) != str(env.get("PORT", "8000")):
        problems.append("haproxy.cfg does not balance over app:PORT")
    elif not target.group(2):
        problems.append(
            f"haproxy.cfg has {target.group(1)} server slots: more app replicas get no traffic"
        )
    else:
        slots = (lb.get("environment") or {}).get(target.group(2))
        replicas = app.get("deploy", {}).get("replicas")
        if str(slots) != str(replicas):
            problems.append(
                f"the balancer's slots ({target.group(2)}={slots}) are not app's replicas "
                f"({replicas})"
            )
    if not re.search(r"(?m)^\s*parse-resolv-conf\s*$", cfg):
        problems.append(
            "haproxy.cfg does not read the container's resolver (parse-resolv-conf): a fixed "
            "nameserver works under one container engine only"
        )
    if not re.search(r"option httpchk GET /readyz", cfg):
        problems.append("haproxy.cfg does not check /readyz")
    admin_port = str(env.get("ADMIN_PORT", "8001"))
    if re.search(rf"\bapp:{admin_port}\b", cfg):
        problems.append(
            "haproxy.cfg routes to app:ADMIN_PORT: metrics and admin must stay internal"
        )
    for match in _L7_RETRIES.finditer(cfg):
        conditions = set(match.group(1).split()) - {"conn-failure", "none"}
        if conditions and not _SAFE_RETRY_ONLY.search(cfg):
            problems.append(
                f"haproxy.cfg retries any method on {sorted(conditions)}: a POST could be applied "
                "twice (http-request disable-l7-retry if !METH_GET)"
            )
    return problems
