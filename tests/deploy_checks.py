"""Checks of the deployment artifacts of rendered projects (tier 1).

Each expensive check runs once per distinct artifact, keyed by the hash of the files it reads:

* the Helm chart (``deploy/helm/<slug>/``, plus the probe routes of the rendered service): rendered
  with helm-python-sdk for the default values and several non-default value sets, linted strict,
  every manifest validated with kubernetes-validate in strict mode against the oldest and the
  newest supported Kubernetes (an unknown kind or apiVersion is a failure), the invariants
  (shutdown budget, PDB room, probes on real routes, security context, selectors, migration
  hook), value sets the chart must refuse, and a README that documents every value;
* the Compose file and the HAProxy configuration: the compose-spec schema, ``haproxy -c``, and the
  structure (replicas behind the balancer, healthchecks, migration before the replicas, stop
  grace period covering the service's shutdown);
* the CI pipeline: the workflow schema (GitHub or GitLab), actionlint, actions pinned by full
  commit SHA, least-privilege permissions, timeouts, uv caching, the image job's start / probe /
  SIGTERM / exit 0 check; the dependency bot of the provider (Dependabot, Renovate) valid against
  its schema and covering uv, Docker, Compose, the pipeline and the chart;
* checkov: one run over every distinct Dockerfile, rendered chart and pipeline at once, with the
  skip list of ``tests/checkov.yaml``.

Cheap cross-file checks run per combination: every setting the chart or Compose passes is a
variable the service documents in .env.example; the deployment files name only the database,
storage provider, store and scheduler the answers chose (FOREIGN_WORDING); no Markdown file has a
heading twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from helpers import POOL_CONTEXT

TESTS_DIR = Path(__file__).resolve().parent
CHECKOV_CONFIG = TESTS_DIR / "checkov.yaml"
# The Kubernetes versions the chart claims (Chart.yaml kubeVersion, docs): both ends are checked.
OLDEST_KUBERNETES = "1.28.0"
NEWEST_KUBERNETES = "1.37.0"
KUBERNETES_VERSIONS = (OLDEST_KUBERNETES, NEWEST_KUBERNETES)
# Seconds that must remain between the service's own shutdown and the kubelet's SIGKILL.
MIN_SHUTDOWN_MARGIN_SECONDS = 2
PROBE_ROUTES = {"startupProbe": "/startupz", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
_DIGEST = "sha256:" + "0123456789abcdef" * 4

# Non-default value sets: each must render, lint and validate, and keep the invariants.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "fixed-replicas": {"autoscaling": {"enabled": False}, "replicaCount": 2},
    "ingress-tls-digest": {
        "image": {"digest": _DIGEST},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"},
            "hosts": [{"host": "svc.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
            "tls": [{"hosts": ["svc.example.com"], "secretName": "svc-tls"}],
        },
    },
    "restricted": {
        "networkPolicy": {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]},
        "podDisruptionBudget": {"minAvailable": "50%"},
        "autoscaling": {"targetMemoryUtilizationPercentage": 80, "minReplicas": 4},
        "topologySpread": {"whenUnsatisfiable": "DoNotSchedule"},
    },
    "long-shutdown-existing-account": {
        "config": {"SHUTDOWN_GRACE_SECONDS": "50", "SHUTDOWN_DRAIN_SECONDS": "7.5"},
        "terminationGracePeriodSeconds": 70,
        "serviceAccount": {"create": False, "name": "existing"},
        "existingSecret": "",
        "extraVolumes": [{"name": "ca", "configMap": {"name": "ca-bundle"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/extra", "readOnly": True}],
    },
}
# Value sets the chart must refuse, and a text the refusal must contain.
REFUSED_VALUE_SETS: dict[str, tuple[dict[str, Any], str]] = {
    "grace-below-budget": ({"terminationGracePeriodSeconds": 20}, "terminationGracePeriodSeconds"),
    "drain-above-budget": ({"config": {"SHUTDOWN_DRAIN_SECONDS": "30"}}, "shutdownMarginSeconds"),
    "writable-root": (
        {"securityContext": {"readOnlyRootFilesystem": False}},
        "readOnlyRootFilesystem",
    ),
    "root-user": ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
    "unknown-value": ({"replicas": 3}, "replicas"),
    "non-string-setting": ({"config": {"PORT": 8000}}, "PORT"),
}

# Storage value sets, by the kind of chart (storage_provider=local has `sharedStorage`; the
# object storage providers have `networkPolicy.storageEgress`). Each must render and keep the
# invariants, or be refused naming the value.
_RESTRICTED_EGRESS = {"networkPolicy": {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}}
STORAGE_VALUE_SETS: dict[str, dict[str, dict[str, Any]]] = {
    "local": {
        "shared-existing-claim": {
            "sharedStorage": {"existingClaim": "team-files", "keep": False},
            "config": {"STORAGE_LOCAL_PATH": "/var/lib/files"},
            **_RESTRICTED_EGRESS,
        },
        "local-development": {
            "config": {"APP_ENV": "development", "STORAGE_LOCAL_SHARED": "false"},
            "sharedStorage": {"enabled": False},
        },
    },
    "object": {
        "storage-tuned-restricted": {
            "config": {
                "STORAGE_PUBLIC_ENDPOINT_URL": "https://files.example.com",
                "STORAGE_PART_SIZE_BYTES": "16777216",
            },
            **_RESTRICTED_EGRESS,
        },
    },
}
STORAGE_REFUSED_VALUE_SETS: dict[str, dict[str, tuple[dict[str, Any], str]]] = {
    "local": {
        "unshared-production": ({"sharedStorage": {"enabled": False}}, "sharedStorage"),
        "no-shared-volume-values": ({"sharedStorage": None}, "sharedStorage"),
        "undeclared-shared-directory": (
            {"config": {"STORAGE_LOCAL_SHARED": "false"}},
            "STORAGE_LOCAL_SHARED",
        ),
        "declared-but-not-mounted": (
            {"config": {"APP_ENV": "development"}, "sharedStorage": {"enabled": False}},
            "sharedStorage is disabled",
        ),
        "relative-storage-path": (
            {"config": {"STORAGE_LOCAL_PATH": "files"}},
            "STORAGE_LOCAL_PATH",
        ),
    },
    "object": {
        "no-bucket-in-production": ({"config": {"STORAGE_BUCKET": None}}, "STORAGE_BUCKET"),
        "invalid-bucket-name": ({"config": {"STORAGE_BUCKET": "My_Bucket"}}, "STORAGE_BUCKET"),
        "local-volume-on-object-storage": ({"sharedStorage": {"enabled": True}}, "sharedStorage"),
    },
}


# Test servers that are not Python packages, by the support module that starts them, and what
# the rendered pipeline must install for it.
PIPELINE_TEST_SERVERS = {
    "azure_storage_server.py": "azurite@3.35.0",
    "redis_server.py": "redis-server",
    "memcached_server.py": "memcached",
    # The database and PostgreSQL lock tests: a service container named by TEST_DATABASE_URL.
    "postgres_server.py": "TEST_DATABASE_URL",
}


def storage_kind(default_values: Mapping[str, Any]) -> str:
    """ "local" for a chart with the shared files volume, else "object" (a bucket)."""
    return "local" if "sharedStorage" in default_values else "object"


def sha_of(paths: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


# --- what a rendered tree holds ----------------------------------------------------------------


@dataclass
class Artifacts:
    tree: Path
    chart: Path | None
    compose: Path | None
    haproxy: Path | None
    workflows: list[Path]
    probes: Path | None

    @classmethod
    def find(cls, tree: Path) -> Artifacts:
        charts = sorted(p.parent for p in tree.glob("deploy/helm/*/Chart.yaml"))
        workflows = (
            sorted(tree.glob(".github/workflows/*.yml"))
            + sorted(tree.glob(".gitlab-ci.yml"))
            + sorted(tree.glob(".gitlab/*.yml"))
        )
        probes = sorted(tree.glob("src/*/web/probes.py"))
        compose = tree / "compose.yaml"
        haproxy = tree / "deploy/compose/haproxy.cfg"
        return cls(
            tree,
            charts[0] if charts else None,
            compose if compose.is_file() else None,
            haproxy if haproxy.is_file() else None,
            workflows,
            probes[0] if probes else None,
        )


def route_paths(probes_py: Path | None) -> set[str]:
    if probes_py is None:
        return set()
    return set(re.findall(r"@router\.get\(\s*\"([^\"]+)\"", probes_py.read_text(encoding="utf-8")))


def env_example_names(tree: Path) -> set[str]:
    path = tree / ".env.example"
    if not path.is_file():
        return set()
    return set(re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", path.read_text(encoding="utf-8")))


# --- what the rendered text says --------------------------------------------------------------

# Wording that only a project with a given answer may contain, in the files that describe its
# deployment (the chart, Compose, HAProxy, the pipelines, the dependency bot's configuration):
# answer -> value -> (pattern that must not appear, what it names). A chart README that says
# "S3-compatible" in an Azure project, or a migration Job in a project without a database,
# misleads whoever deploys it.
FOREIGN_WORDING: dict[str, dict[str, tuple[str, str]]] = {
    "database": {
        "none": (r"(?i)migrat|database|\bDB_|postgres|alembic", "a database"),
    },
    "storage_provider": {
        "s3": (
            r"(?i)google cloud|\bGCS\b|GOOGLE_|azure blob|AZURE_|azurite|STORAGE_LOCAL|"
            r"sharedStorage",
            "another storage provider",
        ),
        "gcs": (
            r"\bS3\b|AWS_|(?i:azure blob|AZURE_|azurite)|STORAGE_LOCAL|sharedStorage",
            "another storage provider",
        ),
        "azure": (
            r"\bS3\b|AWS_|(?i:google cloud|\bGCS\b|GOOGLE_)|STORAGE_LOCAL|sharedStorage",
            "another storage provider",
        ),
        "local": (
            r"\bS3\b|AWS_|(?i:google cloud|\bGCS\b|GOOGLE_|azure blob|AZURE_|azurite|"
            r"bucket)",
            "object storage",
        ),
    },
    "cache_backend": {
        "redis": (r"(?i)memcache", "another store"),
        "valkey": (r"(?i)memcache", "another store"),
        "memcached": (r"(?i)redis(?!patch)|valkey", "another store"),
    },
    "deployment_target": {
        "compose": (r"(?i)\bhelm\b|\bchart\b|kubectl", "a Helm chart"),
    },
    "scheduler": {
        "none": (r"(?i)celery|redbeat|cronjob|run-job|scheduled job|JOBS_|LOCK_URL", "a scheduler"),
        "inprocess": (r"(?i)celery|redbeat|cronjob|run-job", "another scheduler"),
        "celery": (
            r"(?i)cronjob|run-job|JOBS_SCHEDULER_ENABLED|in-process scheduler",
            "another scheduler",
        ),
        "cronjob": (
            r"(?i)celery|redbeat|JOBS_SCHEDULER_ENABLED|in-process scheduler",
            "another scheduler",
        ),
    },
}


def answers_of(tree: Path) -> dict[str, Any]:
    path = tree / ".copier-answers.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}


# The chart's helper library and schema serve every value set (a shared volume or a bucket), so
# only the database rule, which removes whole value groups, applies to them too.
SHARED_CHART_FILES = {"_helpers.tpl", "values.schema.json"}


def deployment_texts(tree: Path) -> list[Path]:
    """The files that describe how the project is deployed and checked."""
    paths = [*_files(tree / "deploy"), *sorted(tree.glob("compose*.yaml"))]
    paths += _files(tree / ".github") + _files(tree / ".gitlab")
    paths += [p for p in (tree / ".gitlab-ci.yml",) if p.is_file()]
    return paths


def wording_problems(tree: Path) -> list[str]:
    """Every deployment file names only what the answers chose (FOREIGN_WORDING)."""
    answers = answers_of(tree)
    rules = [
        (question, *rule)
        for question, by_value in FOREIGN_WORDING.items()
        if (rule := by_value.get(str(answers.get(question)))) is not None
    ]
    problems: list[str] = []
    for path in deployment_texts(tree):
        text = path.read_text(encoding="utf-8", errors="replace")
        for question, pattern, what in rules:
            if path.name in SHARED_CHART_FILES and question != "database":
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if match := re.search(pattern, line):
                    rel = path.relative_to(tree).as_posix()
                    problems.append(f"{rel}:{number} names {what} ({match.group(0)!r})")
    return problems


_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def duplicate_headings(text: str) -> list[str]:
    """Headings of a Markdown document that occur twice (outside code blocks)."""
    seen: set[str] = set()
    duplicates: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else _HEADING.match(line)
        if heading:
            title = heading.group(2).strip().lower()
            if title in seen:
                duplicates.append(heading.group(2).strip())
            seen.add(title)
    return duplicates


def markdown_problems(tree: Path) -> list[str]:
    problems: list[str] = []
    for path in sorted(tree.rglob("*.md")):
        if ".venv" in path.parts or "node_modules" in path.parts:
            continue
        for title in duplicate_headings(path.read_text(encoding="utf-8")):
            problems.append(f"{path.relative_to(tree).as_posix()}: heading {title!r} twice")
    return problems


# --- Helm chart -------------------------------------------------------------------------------


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_chart(chart: Path, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The manifests of the chart for these values (NOTES.txt and empty templates left out)."""
    import helm_python as helm

    with helm.Chart.load(str(chart)) as loaded:
        out = loaded.render(dict(values), name="release", namespace="service")
    docs = []
    for name, text in sorted(out.items()):
        if name.endswith("NOTES.txt") or not text.strip():
            continue
        docs += [doc for doc in yaml.safe_load_all(text) if doc]
    return docs


def validate_manifest(doc: Mapping[str, Any], version: str) -> list[str]:
    """Strict schema validation; an unknown kind/apiVersion is a failure, not a warning."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(dict(doc), version, strict=True)
    except SchemaNotFoundError as error:
        return [f"{where}: no schema in Kubernetes {version} ({error})"]
    except kubernetes_validate.ValidationError as error:
        return [f"{where}: invalid for Kubernetes {version}: {error.message} at {list(error.path)}"]
    return []


def _quantity(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * total
        return -(-share // 100) if round_up else share // 100
    return int(value)


def manifest_invariants(docs: list[dict[str, Any]], routes: set[str]) -> list[str]:
    """The cluster contract of a rendered chart (see docs/service/helm-chart.md)."""
    problems: list[str] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = by_kind.get("Deployment", [])
    web = [d for d in deployments if _component(d) == "web"]
    if len(web) != 1:
        return [f"expected one Deployment of the web component, found {len(web)}"]
    deployment = web[0]
    pod = deployment["spec"]["template"]["spec"]
    config = {}
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"]["name"] == deployment["metadata"]["name"]:
            config = cm.get("data", {})
    web = pod["containers"][0]

    # Shutdown budget: preStop + drain + grace + margin <= terminationGracePeriodSeconds.
    pre_stop = web.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if len(pre_stop) != 2 or pre_stop[0] != "sleep":
        problems.append(f"web container preStop is not `sleep N`: {pre_stop}")
        sleep = 0.0
    else:
        sleep = float(pre_stop[1])
    drain = float(config.get("SHUTDOWN_DRAIN_SECONDS", 5))
    grace = float(config.get("SHUTDOWN_GRACE_SECONDS", 20))
    budget = sleep + drain + grace + MIN_SHUTDOWN_MARGIN_SECONDS
    period = pod.get("terminationGracePeriodSeconds", 30)
    if budget > period:
        problems.append(
            f"preStop {sleep:g} + drain {drain:g} + grace {grace:g} + margin "
            f"{MIN_SHUTDOWN_MARGIN_SECONDS} = {budget:g} s > terminationGracePeriodSeconds {period}"
        )

    # Pull policy: a digest names one image, which the node may reuse; a tag can move.
    for doc in docs:
        for container in (pod_spec(doc) or {}).get("containers", []):
            by_digest = "@sha256:" in container["image"]
            policy = container.get("imagePullPolicy")
            if by_digest and policy == "Always":
                problems.append(
                    f"{doc['kind']}/{doc['metadata']['name']}: image pinned by digest pulled Always"
                )
            if not by_digest and policy != "Always":
                problems.append(
                    f"{doc['kind']}/{doc['metadata']['name']}: image by tag pulled {policy}"
                )

    # Probes on the service's real routes, on the named container port.
    ports = {p.get("name"): p["containerPort"] for p in web.get("ports", [])}
    if str(ports.get("http")) != str(config.get("PORT", "8000")):
        problems.append(f"container port http {ports.get('http')} is not PORT {config.get('PORT')}")
    for probe, path in PROBE_ROUTES.items():
        get = web.get(probe, {}).get("httpGet", {})
        if get.get("path") != path:
            problems.append(f"{probe} does not GET {path}: {get}")
        elif path not in routes:
            problems.append(f"{probe} GETs {path}, which the service does not serve ({routes})")
        if get and get.get("port") not in ports:
            problems.append(f"{probe} port {get.get('port')!r} is not a container port")

    # PDB: at the default replica count a voluntary eviction stays possible, and is bounded.
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind.get("HorizontalPodAutoscaler", [])
    }
    for pdb in by_kind.get("PodDisruptionBudget", []):
        spec = pdb["spec"]
        selected = [
            d
            for d in deployments
            if spec["selector"]["matchLabels"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        if len(selected) != 1:
            problems.append(f"PDB {pdb['metadata']['name']} selects {len(selected)} Deployments")
            continue
        target = selected[0]
        hpa = hpas.get(target["metadata"]["name"])
        replicas = hpa["spec"]["minReplicas"] if hpa else target["spec"].get("replicas", 1)
        if "minAvailable" in spec:
            allowed = replicas - _quantity(spec["minAvailable"], replicas, round_up=True)
        else:
            allowed = _quantity(spec["maxUnavailable"], replicas, round_up=True)
        if allowed < 1:
            problems.append(f"PDB allows no eviction at {replicas} replicas: {spec}")
        if allowed >= replicas:
            problems.append(f"PDB allows evicting all {replicas} replicas: {spec}")
        if spec["selector"]["matchLabels"] != target["spec"]["selector"]["matchLabels"]:
            problems.append("PDB selector does not match the Deployment's pods")
    for service in by_kind.get("Service", []):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in service["spec"]["selector"].items()):
            problems.append("Service selector does not match the Deployment's pods")

    # Every workload: non-root, read-only root, no escalation, no capabilities, seccomp.
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        pod_context = spec.get("securityContext", {})
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: service account token mounted")
        for container in spec["containers"]:
            context = container.get("securityContext", {})
            seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
            expected = {
                "runAsNonRoot": context.get("runAsNonRoot", pod_context.get("runAsNonRoot")),
                "readOnlyRootFilesystem": context.get("readOnlyRootFilesystem"),
                "allowPrivilegeEscalation": context.get("allowPrivilegeEscalation") is False,
                "capabilities.drop ALL": "ALL" in context.get("capabilities", {}).get("drop", []),
                "seccompProfile RuntimeDefault": seccomp.get("type") == "RuntimeDefault",
                "resources.limits": bool(container.get("resources", {}).get("limits")),
            }
            problems += [f"{where}: {name} not set" for name, ok in expected.items() if not ok]

    problems += storage_invariants(docs, by_kind, config)
    problems += job_invariants(by_kind, hpas)
    problems += internal_port_invariants(by_kind, web, config)

    # Migrations: only in the hook Job, never in the serving pods.
    if "migrate" in web.get("args", []) + web.get("command", []):
        problems.append("the Deployment runs migrate at start")
    for job in by_kind.get("Job", []):
        hook = job["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        if set(hook.split(",")) != {"pre-install", "pre-upgrade"}:
            problems.append(f"Job {job['metadata']['name']} is not a pre-install,pre-upgrade hook")
        if job["spec"]["template"]["spec"]["containers"][0].get("args") != ["migrate"]:
            problems.append(f"Job {job['metadata']['name']} does not run migrate")
    return problems


def _component(doc: Mapping[str, Any]) -> str | None:
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def internal_port_invariants(
    by_kind: Mapping[str, list[dict[str, Any]]],
    web: Mapping[str, Any],
    config: Mapping[str, Any],
) -> list[str]:
    """Metrics and admin routes (ADMIN_PORT) stay inside the cluster: a ClusterIP Service
    exposes the container's admin port, and no Ingress routes to it."""
    problems: list[str] = []
    ports = {p.get("name"): p["containerPort"] for p in web.get("ports", [])}
    if str(ports.get("admin")) != str(config.get("ADMIN_PORT", "8001")):
        problems.append(f"container port admin {ports.get('admin')} is not ADMIN_PORT")
    internal: dict[str, set[Any]] = {}
    for service in by_kind.get("Service", []):
        name = service["metadata"]["name"]
        for port in service["spec"].get("ports", []):
            if port.get("targetPort") not in ("admin", ports.get("admin")):
                continue
            internal.setdefault(name, set()).update({port.get("name"), port.get("port")})
            if service["spec"].get("type", "ClusterIP") != "ClusterIP":
                problems.append(f"Service/{name} publishes the internal port outside the cluster")
    if not internal:
        problems.append("no Service exposes the internal port (admin) to the cluster")
    for ingress in by_kind.get("Ingress", []):
        spec = ingress["spec"]
        backends = [spec.get("defaultBackend", {})] + [
            path.get("backend", {})
            for rule in spec.get("rules", [])
            for path in rule.get("http", {}).get("paths", [])
        ]
        for backend in backends:
            service = backend.get("service", {})
            port = service.get("port", {})
            named = {port.get("name"), port.get("number")} - {None}
            if named & internal.get(service.get("name"), set()):
                problems.append(
                    f"Ingress/{ingress['metadata']['name']} routes to the internal port"
                )
    return problems


def job_invariants(
    by_kind: Mapping[str, list[dict[str, Any]]], hpas: Mapping[str, Any]
) -> list[str]:
    """Scheduled jobs: a CronJob never overlaps itself, skips what it cannot start in time,
    keeps a bounded history and runs `run-job NAME` in UTC; Celery runs one beat (two at most,
    rolled out with Recreate, never autoscaled) and workers with their ping as liveness."""
    problems: list[str] = []
    for cron in by_kind.get("CronJob", []):
        where = f"CronJob/{cron['metadata']['name']}"
        spec = cron["spec"]
        if spec.get("concurrencyPolicy") != "Forbid":
            problems.append(f"{where}: concurrencyPolicy is not Forbid")
        if not spec.get("startingDeadlineSeconds"):
            problems.append(f"{where}: no startingDeadlineSeconds")
        for limit in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            if limit not in spec:
                problems.append(f"{where}: no {limit}")
        if spec.get("timeZone") != "Etc/UTC":
            problems.append(f"{where}: schedule not in UTC (timeZone {spec.get('timeZone')})")
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        args = pod["containers"][0].get("args", [])
        if len(args) != 2 or args[0] != "run-job":
            problems.append(f"{where}: does not run `run-job NAME`: {args}")
        if pod.get("restartPolicy") not in {"Never", "OnFailure"}:
            problems.append(f"{where}: restartPolicy {pod.get('restartPolicy')}")
    by_component = {_component(d): d for d in by_kind.get("Deployment", [])}
    worker, beat = by_component.get("worker"), by_component.get("beat")
    if bool(worker) != bool(beat):
        problems.append("a Celery beat needs a worker and a worker a beat")
    if beat is not None:
        if beat["spec"]["template"]["spec"]["containers"][0].get("args") != ["celery-beat"]:
            problems.append("the beat Deployment does not run celery-beat")
        if not 1 <= int(beat["spec"].get("replicas", 1)) <= 2:
            problems.append(
                f"beat replicas {beat['spec'].get('replicas')}: one sends, a second waits"
            )
        if beat["spec"].get("strategy", {}).get("type") != "Recreate":
            problems.append("the beat Deployment does not roll out with Recreate")
        if beat["metadata"]["name"] in hpas:
            problems.append("the beat Deployment is autoscaled")
    if worker is not None:
        container = worker["spec"]["template"]["spec"]["containers"][0]
        if container.get("args") != ["celery-worker"]:
            problems.append("the worker Deployment does not run celery-worker")
        command = container.get("livenessProbe", {}).get("exec", {}).get("command", [])
        if command[-2:] != ["celery-worker", "--ping"]:
            problems.append(f"the worker's liveness probe is not its --ping: {command}")
    return problems


def storage_invariants(
    docs: list[dict[str, Any]],
    by_kind: Mapping[str, list[dict[str, Any]]],
    config: Mapping[str, Any],
) -> list[str]:
    """Files every replica sees: a declared shared directory is a ReadWriteMany volume mounted
    by every workload (hooks run before the claim exists); object storage stays reachable over
    HTTPS when egress is restricted."""
    problems: list[str] = []
    production = config.get("APP_ENV") == "production"
    local = "STORAGE_LOCAL_PATH" in config and "STORAGE_BUCKET" not in config
    declared = str(config.get("STORAGE_LOCAL_SHARED", "false")).lower() == "true"
    if local and production and not declared:
        problems.append("production stores files in a local directory not declared shared")
    if declared:
        path = config.get("STORAGE_LOCAL_PATH")
        claims = {pvc["metadata"]["name"]: pvc for pvc in by_kind.get("PersistentVolumeClaim", [])}
        for claim in claims.values():
            if claim["spec"].get("accessModes") != ["ReadWriteMany"]:
                problems.append(
                    f"claim {claim['metadata']['name']} is not ReadWriteMany: "
                    f"{claim['spec'].get('accessModes')}"
                )
        for doc in docs:
            spec = pod_spec(doc)
            if spec is None or doc["metadata"].get("annotations", {}).get("helm.sh/hook"):
                continue
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for container in spec["containers"]:
                mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == path]
                claim = (
                    volumes.get(mounts[0]["name"], {}).get("persistentVolumeClaim", {})
                    if mounts
                    else {}
                )
                if not claim:
                    problems.append(
                        f"{where}: STORAGE_LOCAL_PATH {path} is not a mounted volume claim"
                    )
                elif mounts[0].get("readOnly"):
                    problems.append(f"{where}: the shared files volume is mounted read-only")
    if "STORAGE_BUCKET" in config:
        for policy in by_kind.get("NetworkPolicy", []):
            if "Egress" not in policy["spec"].get("policyTypes", []):
                continue
            https = any(
                any(
                    str(port.get("port")) == "443" and port.get("protocol", "TCP") == "TCP"
                    for port in rule.get("ports", [])
                )
                for rule in policy["spec"].get("egress", [])
            )
            if not https:
                problems.append(
                    f"NetworkPolicy/{policy['metadata']['name']} restricts egress without "
                    "HTTPS (TCP 443) to the object storage"
                )
    return problems


def pod_spec(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = doc.get("kind")
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def value_paths(values: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf value (maps descend; lists and empty maps are leaves)."""
    if isinstance(values, Mapping) and values and prefix != "config":
        return [p for k, v in values.items() for p in value_paths(v, f"{prefix}.{k}".lstrip("."))]
    return [prefix]


def check_chart(chart_dir: str, routes: list[str]) -> dict[str, Any]:
    """Every chart check; returns problems and the default manifests (for checkov)."""
    import helm_python as helm

    chart = Path(chart_dir)
    problems: list[str] = []
    default_docs: list[dict[str, Any]] = []
    kind = storage_kind(yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8")))
    value_sets = {**VALUE_SETS, **STORAGE_VALUE_SETS[kind]}
    refused_value_sets = {**REFUSED_VALUE_SETS, **STORAGE_REFUSED_VALUE_SETS[kind]}
    for label, values in value_sets.items():
        try:
            docs = render_chart(chart, values)
        except Exception as error:
            problems.append(f"values {label}: does not render: {error}")
            continue
        if label == "default":
            default_docs = docs
        for doc in docs:
            for version in KUBERNETES_VERSIONS:
                problems += [f"values {label}: {p}" for p in validate_manifest(doc, version)]
        problems += [f"values {label}: {p}" for p in manifest_invariants(docs, set(routes))]
    for label, (values, expected) in refused_value_sets.items():
        try:
            render_chart(chart, values)
        except Exception as error:
            if expected not in str(error):
                problems.append(f"refused values {label}: error does not name {expected}: {error}")
        else:
            problems.append(f"values {label} render, but the chart must refuse them")
    for version in KUBERNETES_VERSIONS:
        result = helm.lint(str(chart), {}, strict=True, kube_version=f"v{version}")
        problems += [
            f"helm lint --strict (Kubernetes {version}): {m.get('path')}: {m.get('error')}"
            for m in result.get("messages", [])
            if m.get("severity", 0) >= 2
        ]
        problems += [f"helm lint (Kubernetes {version}): {e}" for e in result.get("errors", [])]
    values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8"))
    readme = (
        (chart / "README.md").read_text(encoding="utf-8") if (chart / "README.md").is_file() else ""
    )
    undocumented = [p for p in value_paths(values) if f"`{p}`" not in readme]
    if undocumented:
        problems.append(f"chart README.md does not document values {undocumented}")
    manifests = "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in default_docs)
    return {"problems": problems, "manifests": manifests, "documents": len(default_docs)}


# --- Compose ----------------------------------------------------------------------------------


@cache
def _vendored_schema(name: str) -> dict[str, Any]:
    import check_jsonschema

    path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def schema_problems(document: Any, schema_name: str) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(_vendored_schema(schema_name))
    return [
        f"{schema_name} schema: {error.message} at {'/'.join(map(str, error.absolute_path))}"
        for error in sorted(validator.iter_errors(document), key=str)[:10]
    ]


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


def check_compose(compose_path: str, haproxy_path: str | None) -> list[str]:
    compose = yaml.safe_load(Path(compose_path).read_text(encoding="utf-8"))
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


# --- CI pipelines -----------------------------------------------------------------------------

# The image job of every pipeline runs the same check (GitHub and GitLab alike): start the built
# image, wait until it answers a probe, stop it with SIGTERM and require exit code 0.
IMAGE_SMOKE_STEPS = {
    "start the image detached": r"docker run -d ",
    "wait until it answers /livez or /readyz": r"(?s)(?=.*for _ in )(?=.*/(livez|readyz))",
    "stop it with SIGTERM": r"docker stop ",
    "require exit code 0": r'status="\$\(docker wait (\w+)\)"(.*\n)*\s*test "\$status" = 0',
}


def image_smoke_script(document: Mapping[str, Any]) -> str | None:
    """The shell script of a pipeline (GitHub workflow or GitLab CI) that runs the built image."""
    jobs = document.get("jobs") if isinstance(document.get("jobs"), Mapping) else document
    for job in jobs.values():
        if not isinstance(job, Mapping):
            continue
        scripts = [
            step.get("run", "") for step in job.get("steps", []) if isinstance(step, Mapping)
        ]
        scripts += [line for line in job.get("script", []) if isinstance(line, str)]
        for script in scripts:
            if "docker run" in script:
                return script
    return None


def image_smoke_problems(text: str, document: Mapping[str, Any]) -> list[str]:
    if "docker build" not in text and "docker/build-push-action" not in text:
        return []
    script = image_smoke_script(document)
    if script is None:
        return ["the image job never starts the image it built"]
    return [
        f"the image job does not {step}"
        for step, pattern in IMAGE_SMOKE_STEPS.items()
        if not re.search(pattern, script)
    ]


_PINNED_USES = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def check_workflow(path: str) -> list[str]:
    text = Path(path).read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    if Path(path).name == ".gitlab-ci.yml" or Path(path).parent.name == ".gitlab":
        problems = schema_problems(document, "gitlab-ci")
        for name, job in document.items():
            if (
                isinstance(job, dict)
                and "script" in job
                and "timeout" not in job
                and "timeout" not in document.get("default", {})
            ):
                problems.append(f"job {name} has no timeout")
        problems += image_smoke_problems(text, document)
        if Path(path).name == ".gitlab-ci.yml" and "UV_CACHE_DIR" not in document.get(
            "variables", {}
        ):
            problems.append("uv's cache is not kept (UV_CACHE_DIR + cache)")
        return problems
    if True in document:  # YAML 1.1 reads the key `on` as a boolean
        document["on"] = document.pop(True)
    problems = schema_problems(document, "github-workflows")
    permissions = document.get("permissions")
    if permissions != {"contents": "read"}:
        problems.append(
            f"top-level permissions are not least privilege (contents: read): {permissions}"
        )
    # Write access only in workflows that no push or pull request can start (a scheduled bot).
    triggers = document.get("on", {})
    untrusted = {"push", "pull_request", "pull_request_target"} & set(
        [triggers] if isinstance(triggers, str) else triggers
    )
    for name, job in document.get("jobs", {}).items():
        if "timeout-minutes" not in job:
            problems.append(f"job {name} has no timeout-minutes")
        if untrusted and "write" in json.dumps(job.get("permissions", {})):
            problems.append(f"job {name} asks for write permissions")
    for line in re.findall(r"(?m)^\s*-?\s*uses:\s*(.+)$", text):
        if not _PINNED_USES.match(line.strip()):
            problems.append(
                f"action not pinned by full commit SHA with a version comment: {line.strip()}"
            )
    problems += image_smoke_problems(text, document)
    if "setup-uv" in text and "enable-cache: true" not in text:
        problems.append("setup-uv without enable-cache")
    actionlint = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    result = subprocess.run(
        [actionlint, "-no-color", path], capture_output=True, text=True, check=False
    )
    if result.returncode:
        problems.append(f"actionlint: {result.stdout}{result.stderr}".strip())
    return problems


# --- the dependency bot of the chosen CI provider ------------------------------------------------

# What the bot must keep moving: the Python lock, the base images, the Compose images, the
# pipeline's own pins, and the chart when there is one.
DEPENDABOT_ECOSYSTEMS = {"uv", "docker", "docker-compose", "github-actions"}
RENOVATE_MANAGERS = {"pep621", "dockerfile", "docker-compose", "gitlabci"}


@cache
def _bot_schema_problems(text: str, schema_name: str) -> tuple[str, ...]:
    document = json.loads(text) if schema_name == "renovate" else yaml.safe_load(text)
    return tuple(schema_problems(document, schema_name))


def dependency_bot_problems(tree: Path, chart: Path | None) -> list[str]:
    """GitHub: .github/dependabot.yml; GitLab: .gitlab/renovate.json. Valid against its schema and
    covering every kind of pinned version the project has."""
    problems: list[str] = []
    if (tree / ".github/workflows").is_dir():
        path = tree / ".github/dependabot.yml"
        if not path.is_file():
            return ["no .github/dependabot.yml: nothing updates the pinned versions"]
        text = path.read_text(encoding="utf-8")
        problems += [f"dependabot.yml: {p}" for p in _bot_schema_problems(text, "dependabot")]
        updates = {
            (u.get("package-ecosystem"), u.get("directory"))
            for u in yaml.safe_load(text).get("updates", [])
        }
        wanted = {(name, "/") for name in DEPENDABOT_ECOSYSTEMS}
        if chart:
            wanted.add(("helm", "/" + chart.relative_to(tree).as_posix()))
        if missing := sorted(wanted - updates):
            problems.append(f"dependabot.yml does not update {missing}")
    if (tree / ".gitlab-ci.yml").is_file():
        path = tree / ".gitlab/renovate.json"
        if not path.is_file():
            return [*problems, "no .gitlab/renovate.json: nothing updates the pinned versions"]
        text = path.read_text(encoding="utf-8")
        problems += [f"renovate.json: {p}" for p in _bot_schema_problems(text, "renovate")]
        managers = set(json.loads(text).get("enabledManagers", []))
        wanted = RENOVATE_MANAGERS | ({"helmv3", "helm-values"} if chart else set())
        if missing := sorted(wanted - managers):
            problems.append(f"renovate.json does not enable the managers {missing}")
    return problems


# --- checkov, once over every distinct artifact -------------------------------------------------


def run_checkov(
    artifacts: Mapping[str, Mapping[str, str]],
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """artifacts: key -> {relative path: text}. One checkov run over all of them; returns the
    failed checks per key, and the passed/failed/skipped totals."""
    checkov = shutil.which("checkov") or str(Path.home() / ".local/bin/checkov")
    if not Path(checkov).exists():
        return {
            key: ["checkov is not installed (uv tool install checkov)"] for key in artifacts
        }, {}
    with tempfile.TemporaryDirectory(prefix="checkov-") as stage:
        for key, files in artifacts.items():
            for rel, text in files.items():
                path = Path(stage, key, rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        result = subprocess.run(
            [
                checkov,
                "--skip-download",
                "--config-file",
                str(CHECKOV_CONFIG),
                "-d",
                stage,
                "--framework",
                "dockerfile",
                "kubernetes",
                "github_actions",
                "gitlab_ci",
                "--quiet",
                "--compact",
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=stage,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"},
        )
    try:
        reports = json.loads(result.stdout)
    except json.JSONDecodeError:
        message = f"checkov failed (exit {result.returncode}): {result.stderr[-2000:]}"
        return {key: [message] for key in artifacts}, {}
    reports = reports if isinstance(reports, list) else [reports]
    failed: dict[str, list[str]] = {key: [] for key in artifacts}
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for report in reports:
        summary = report.get("summary", {})
        for name in totals:
            totals[name] += summary.get(name, 0)
        for check in report.get("results", {}).get("failed_checks", []):
            key, _, rel = check["file_path"].lstrip("/").partition("/")
            failed.setdefault(key, []).append(
                f"checkov {check['check_id']} ({check['check_name']}) in {rel}: "
                f"{check.get('resource')}"
            )
    return failed, totals


# --- the whole deployment check of many trees ---------------------------------------------------


@dataclass
class DeployReport:
    problems: dict[str, list[str]]  # tree name -> problems
    stats: dict[str, Any] = field(default_factory=dict)


def _chart_job(args: tuple[str, list[str]]) -> dict[str, Any]:
    return check_chart(*args)


def _compose_job(args: tuple[str, str | None]) -> list[str]:
    return check_compose(*args)


def run_deploy_checks(trees: Iterable[Path], workers: int | None = None) -> DeployReport:
    found = [Artifacts.find(tree) for tree in trees]
    charts: dict[str, tuple[str, list[str]]] = {}
    composes: dict[str, tuple[str, str | None]] = {}
    workflows: dict[str, str] = {}
    keys: dict[str, dict[str, Any]] = {}
    problems: dict[str, list[str]] = {}
    for a in found:
        own: list[str] = []
        k: dict[str, Any] = {"workflows": []}
        names = env_example_names(a.tree)
        routes = sorted(route_paths(a.probes))
        if a.chart:
            k["chart"] = sha_of(_files(a.chart) + ([a.probes] if a.probes else []), a.tree)
            charts.setdefault(k["chart"], (str(a.chart), routes))
            values = yaml.safe_load((a.chart / "values.yaml").read_text(encoding="utf-8"))
            unknown = sorted(set(values.get("config", {})) - names)
            if unknown:
                own.append(f"chart config sets {unknown}, which .env.example does not list")
        if a.compose:
            k["compose"] = sha_of([a.compose, *([a.haproxy] if a.haproxy else [])], a.tree)
            composes.setdefault(
                k["compose"], (str(a.compose), str(a.haproxy) if a.haproxy else None)
            )
            compose = yaml.safe_load(a.compose.read_text(encoding="utf-8"))
            env = compose.get("services", {}).get("app", {}).get("environment", {})
            unknown = sorted(set(env) - names)
            if unknown:
                own.append(f"compose.yaml sets {unknown}, which .env.example does not list")
        own += wording_problems(a.tree) + markdown_problems(a.tree)
        own += dependency_bot_problems(a.tree, a.chart)
        if not a.workflows:
            own.append("no CI pipeline (.github/workflows/*.yml or .gitlab-ci.yml)")
        # Servers the rendered tests start that are no Python dev dependency: the pipeline's
        # test job installs them.
        for support, needle in PIPELINE_TEST_SERVERS.items():
            if (a.tree / "tests/support" / support).is_file() and not any(
                needle in w.read_text(encoding="utf-8") for w in a.workflows
            ):
                own.append(f"the CI pipeline does not install {needle} for tests/support/{support}")
        for workflow in a.workflows:
            key = sha_of([workflow], a.tree)
            workflows.setdefault(key, str(workflow))
            k["workflows"].append(key)
        dockerfile = a.tree / "Dockerfile"
        if dockerfile.is_file():
            k["dockerfile"] = sha_of([dockerfile], a.tree)
        keys[a.tree.name] = k
        problems[a.tree.name] = own

    workers = min(workers or os.cpu_count() or 1, max(1, len(charts) + len(composes)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=POOL_CONTEXT) as pool:
        chart_results = dict(zip(charts, pool.map(_chart_job, charts.values()), strict=True))
        compose_results = dict(
            zip(composes, pool.map(_compose_job, composes.values()), strict=True)
        )
        workflow_results = dict(
            zip(workflows, pool.map(check_workflow, workflows.values()), strict=True)
        )

    # checkov: every distinct Dockerfile, default chart render and pipeline, in one run.
    staged: dict[str, dict[str, str]] = {}
    for a in found:
        k = keys[a.tree.name]
        if "dockerfile" in k:
            staged.setdefault(
                k["dockerfile"][:16],
                {"Dockerfile": (a.tree / "Dockerfile").read_text(encoding="utf-8")},
            )
        if "chart" in k:
            staged.setdefault(
                k["chart"][:16], {"manifests.yaml": chart_results[k["chart"]]["manifests"]}
            )
        for key, workflow in zip(k["workflows"], a.workflows, strict=True):
            rel = workflow.relative_to(a.tree).as_posix()
            staged.setdefault(key[:16], {rel: workflow.read_text(encoding="utf-8")})
    checkov_failed, checkov_totals = run_checkov(staged) if staged else ({}, {})

    for a in found:
        k, own = keys[a.tree.name], problems[a.tree.name]
        if "chart" in k:
            own += [f"deploy/helm: {p}" for p in chart_results[k["chart"]]["problems"]]
            own += checkov_failed.get(k["chart"][:16], [])
        if "compose" in k:
            own += [f"compose.yaml: {p}" for p in compose_results[k["compose"]]]
        for key, workflow in zip(k["workflows"], a.workflows, strict=True):
            rel = workflow.relative_to(a.tree).as_posix()
            own += [f"{rel}: {p}" for p in workflow_results[key]]
            own += checkov_failed.get(key[:16], [])
        if "dockerfile" in k:
            own += checkov_failed.get(k["dockerfile"][:16], [])

    combos = len(found)
    stats = {
        "helm chart": {
            "combinations": sum("chart" in k for k in keys.values()),
            "distinct": len(charts),
        },
        "compose": {
            "combinations": sum("compose" in k for k in keys.values()),
            "distinct": len(composes),
        },
        "ci pipeline": {"combinations": combos, "distinct": len(workflows)},
        "checkov": {"combinations": combos, "distinct": len(staged), **checkov_totals},
        "kubernetes": f"{OLDEST_KUBERNETES} .. {NEWEST_KUBERNETES}",
        "chart value sets": {
            "common": len(VALUE_SETS),
            **{f"storage {kind}": len(sets) for kind, sets in STORAGE_VALUE_SETS.items()},
            "refused": len(REFUSED_VALUE_SETS),
            **{f"refused storage {k}": len(s) for k, s in STORAGE_REFUSED_VALUE_SETS.items()},
        },
        "manifests per default render": sorted({r["documents"] for r in chart_results.values()}),
    }
    return DeployReport(problems, stats)


# --- the deployment settings, loaded by the rendered service itself (tier 2) --------------------

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
# Secrets the deployment files leave to a secret store: stand-ins of the right shape.
STAND_IN_SECRETS = {
    "SECRET_KEY": "k8F2-pQ9xZr4Lw7Tn1Vb6Yc3Hs0Ud5Ge8Jm2Ka4",
    "STORE_URL": "redis://store.invalid:6379/0",
    "DATABASE_URL": "postgresql://app:secret@postgres.invalid:5432/app",
    "JOBS_ADMIN_TOKEN": "t7Yq-3LmZ0pR8sWx2Vn5Kc9Hb4Jd6Fg1Qa",
}

# Run with the project's interpreter: argv[1] is a JSON file {"env": {...}, "secrets": {...}}.
# The settings are loaded exactly as at start (environment plus secret files in SECRETS_DIR);
# nothing connects anywhere.
SETTINGS_PROBE = """\
import importlib, json, os, sys, tempfile
from pathlib import Path

spec = json.loads(Path(sys.argv[1]).read_text())
package = sys.argv[2]
for name in [n for n in os.environ if n.isupper() and not n.startswith(("UV_", "PATH", "HOME"))]:
    del os.environ[name]
os.environ.update(spec["env"])
secrets_dir = Path(tempfile.mkdtemp())
for name, value in spec["secrets"].items():
    (secrets_dir / name).write_text(value + "\\n")
os.environ["SECRETS_DIR"] = str(secrets_dir)
config = importlib.import_module(f"{package}.config")
try:
    settings = config.load_settings()
    try:
        database = importlib.import_module(f"{package}.db.settings")
    except ModuleNotFoundError:
        database = None
    if database is not None:
        database.DatabaseSettings.load(settings)
    try:
        storage = importlib.import_module(f"{package}.storage.settings")
    except ModuleNotFoundError:
        storage = None
    if storage is not None:
        storage.StorageSettings.load(settings)
    try:
        jobs = importlib.import_module(f"{package}.jobs.settings")
    except ModuleNotFoundError:
        jobs = None
    if jobs is not None:
        jobs_settings = jobs.JobsSettings.load(settings)
        try:
            celery = importlib.import_module(f"{package}.jobs.celery_app")
        except ModuleNotFoundError:
            celery = None
        if celery is not None:
            celery.CelerySettings.load(settings, jobs_settings)
except config.ConfigError as error:
    sys.exit(f"{spec['label']}: {error}")
print(f"{spec['label']}: settings accepted (APP_ENV={settings.app_env})")
"""


def deployment_environments(tree: Path) -> list[dict[str, Any]]:
    """The environment and secret files each deployment artifact gives the service."""
    found = Artifacts.find(tree)
    database = any(tree.glob("src/*/db/settings.py"))
    jobs = any(tree.glob("src/*/jobs/settings.py"))
    wanted = [
        "SECRET_KEY",
        "STORE_URL",
        *(["DATABASE_URL"] if database else []),
        *(["JOBS_ADMIN_TOKEN"] if jobs else []),
    ]
    specs = []
    if found.chart:
        values = yaml.safe_load((found.chart / "values.yaml").read_text(encoding="utf-8"))
        env = {k: str(v) for k, v in values["config"].items()}
        secrets = {name: STAND_IN_SECRETS[name] for name in wanted}
        specs.append({"label": "chart config + existingSecret", "env": env, "secrets": secrets})
    if found.compose:
        compose = yaml.safe_load(found.compose.read_text(encoding="utf-8"))
        raw = compose["services"]["app"]["environment"]
        env = {k: _INTERPOLATION.sub(lambda m: m.group(2) or "", str(v)) for k, v in raw.items()}
        declared = compose["services"]["app"].get("secrets", [])
        secrets = {name: STAND_IN_SECRETS[name] for name in declared}
        specs.append({"label": "compose app environment + secrets", "env": env, "secrets": secrets})
    return specs
