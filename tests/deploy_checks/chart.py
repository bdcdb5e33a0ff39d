"""The Helm chart: rendered for several value sets, validated against the oldest and newest
Kubernetes, its invariants, the value sets it must refuse, and a README documenting every value."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from deploy_checks.common import (
    KUBERNETES_VERSIONS,
    MIN_SHUTDOWN_MARGIN_SECONDS,
    load_yaml_all,
    read_yaml,
)

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
# The flag file every project ships (deploy/flags/flags.json), as `--set-file` passes it.
_FLAGS = json.dumps(
    {
        "flags": {
            "greeting": {
                "state": "ENABLED",
                "variants": {"classic": "Hello", "friendly": "Hi there"},
                "defaultVariant": "classic",
            }
        }
    }
)
VALUE_SETS["feature-flags"] = {"featureFlags": _FLAGS}
# Two server processes per pod: a core each, and (2 + 1 supervisor) x memoryPerProcess 160Mi =
# 480Mi, fit the limits; fewer replicas keep the doubled database pools (and job locks) inside
# the connection budget.
_TWO_PROCESSES = {
    "config": {"WEB_CONCURRENCY": "2"},
    "resources": {"limits": {"cpu": "2", "memory": "512Mi"}},
    "autoscaling": {"maxReplicas": 4},
}
VALUE_SETS["two-processes"] = _TWO_PROCESSES
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
    "feature-flags-not-json": ({"featureFlags": "{not json"}, "featureFlags"),
    "feature-flags-without-flags": ({"featureFlags": '{"greeting": {}}'}, "featureFlags"),
    # Process budget (templates/process-budget.yaml): a core (from two processes on) and
    # memoryPerProcess per process, plus one memoryPerProcess for the supervisor of two or more.
    "processes-above-cpu": (
        {**_TWO_PROCESSES, "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}},
        "resources.limits.cpu 1 = 1000m < config.WEB_CONCURRENCY 2 processes x 1000m",
    ),
    "processes-above-memory": (
        {
            "config": {"WEB_CONCURRENCY": "4"},
            "resources": {"limits": {"cpu": "4", "memory": "512Mi"}},
            "autoscaling": {"enabled": False},
            "replicaCount": 2,
        },
        "resources.limits.memory 512Mi (536870912 bytes) < (config.WEB_CONCURRENCY 4 processes"
        " + 1 supervisor) x memoryPerProcess 160Mi = 800Mi",
    ),
    "one-process-above-memory": (
        {"resources": {"limits": {"memory": "128Mi"}}},
        "resources.limits.memory 128Mi (134217728 bytes) < config.WEB_CONCURRENCY 1 process",
    ),
    "no-processes": ({"config": {"WEB_CONCURRENCY": "0"}}, "WEB_CONCURRENCY"),
    "more-processes-than-the-service-runs": (
        {"config": {"WEB_CONCURRENCY": "65"}},
        "WEB_CONCURRENCY",
    ),
    "memory-per-process-not-a-quantity": ({"memoryPerProcess": "160MB"}, "memoryPerProcess"),
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


def storage_kind(default_values: Mapping[str, Any]) -> str:
    """ "local" for a chart with the shared files volume, else "object" (a bucket)."""
    return "local" if "sharedStorage" in default_values else "object"


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_chart(
    chart: Path, values: Mapping[str, Any], release: str = "release"
) -> list[dict[str, Any]]:
    """The manifests of the chart for these values (NOTES.txt and empty templates left out)."""
    import helm_python as helm

    with helm.Chart.load(str(chart)) as loaded:
        out = loaded.render(dict(values), name=release, namespace="service")
    docs = []
    for name, text in sorted(out.items()):
        if name.endswith("NOTES.txt") or not text.strip():
            continue
        docs += [doc for doc in load_yaml_all(text) if doc]
    return docs


@functools.cache
def _schema_validator(version: str, kind: str, api_version: str) -> Any:
    """kubernetes_validate.validate's strict schema for this kind, built once per process (the
    library re-reads its 1.8 MB definitions file on every call: 30 ms a document). None when
    the Kubernetes version has no such kind."""
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    # The library's own lookup: the newest schema set not newer than the version asked for.
    wanted = utils.major_minor(version)
    schema_version = [v for v in utils.all_versions() if utils.major_minor(v) <= wanted][-1]
    schema_dir = f"kubernetes-json-schema/v{schema_version}-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{schema_dir}/{kind.lower()}-{group}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate_manifest(doc: Mapping[str, Any], version: str) -> list[str]:
    """Strict schema validation; an unknown kind/apiVersion is a failure, not a warning."""
    import jsonschema

    where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    validator = _schema_validator(version, str(doc.get("kind")), str(doc.get("apiVersion")))
    if validator is None:
        return [f"{where}: no schema in Kubernetes {version} for {doc.get('apiVersion')}"]
    try:
        validator.validate(dict(doc))
    except jsonschema.ValidationError as error:
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
    problems += feature_flag_invariants(by_kind)
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


def feature_flag_invariants(by_kind: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    """With flags: every workload but the hooks mounts the flags ConfigMap as a directory (a
    subPath mount never sees an update) and points FEATURE_FLAGS_FILE into it. That no pod
    template changes with the flags is checked by ``flag_change_rolls_no_pod``."""
    flag_maps = {
        cm["metadata"]["name"]: cm
        for cm in by_kind.get("ConfigMap", [])
        if "flags.json" in cm.get("data", {})
    }
    problems: list[str] = []
    for kind in ("Deployment", "CronJob", "Job"):
        for doc in by_kind.get(kind, []):
            spec = pod_spec(doc)
            if spec is None or doc["metadata"].get("annotations", {}).get("helm.sh/hook"):
                continue
            where = f"{kind} {doc['metadata']['name']}"
            volumes = {
                v["name"]: v["configMap"]["name"]
                for v in spec.get("volumes", [])
                if v.get("configMap", {}).get("name") in flag_maps
            }
            if bool(volumes) != bool(flag_maps):
                mounted, exists = bool(volumes), bool(flag_maps)
                problems.append(f"{where}: flags ConfigMap mounted {mounted}, exists {exists}")
            for container in spec.get("containers", []):
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                mounts = [m for m in container.get("volumeMounts", []) if m["name"] in volumes]
                if not flag_maps:
                    if "FEATURE_FLAGS_FILE" in env:
                        problems.append(f"{where}: FEATURE_FLAGS_FILE set without flags")
                    continue
                if len(mounts) != 1 or "subPath" in mounts[0]:
                    problems.append(f"{where}: flags not mounted once as a directory: {mounts}")
                    continue
                expected = f"{mounts[0]['mountPath']}/flags.json"
                if env.get("FEATURE_FLAGS_FILE") != expected:
                    problems.append(f"{where}: FEATURE_FLAGS_FILE is not {expected}: {env}")
    return problems


def flag_change_rolls_no_pod(chart: Path, flagged_docs: list[dict[str, Any]]) -> list[str]:
    """Two different flag values must render the same workloads: only the ConfigMap differs, so
    a flag change never restarts a pod (no checksum of the flags in a pod template).
    ``flagged_docs``: the chart rendered with ``featureFlags`` set to ``_FLAGS``."""

    def workloads(docs: list[dict[str, Any]]) -> list[str]:
        return [json.dumps(d, sort_keys=True) for d in docs if pod_spec(d) is not None]

    changed = _FLAGS.replace('"defaultVariant": "classic"', '"defaultVariant": "friendly"')
    if workloads(flagged_docs) != workloads(render_chart(chart, {"featureFlags": changed})):
        return ["a feature flag change changes a workload's pod template: it would roll the pods"]
    return []


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


def connection_budget(values: Mapping[str, Any]) -> tuple[int, int]:
    """The worst-case PostgreSQL connections of a release and what the database accepts, computed
    here independently of the chart's own arithmetic (templates/_helpers.tpl)."""
    database, config = values["database"], values.get("config", {})
    autoscaling = values.get("autoscaling", {})
    replicas = int(
        autoscaling["maxReplicas"] if autoscaling.get("enabled") else values["replicaCount"]
    )
    surge = str(values.get("rollingUpdate", {}).get("maxSurge", "25%"))
    surge_pods = -(-replicas * int(surge[:-1]) // 100) if surge.endswith("%") else int(surge)
    pods = replicas + surge_pods
    # Every server process of a web pod has its own pool and job-lock connections.
    processes = pods * int(config.get("WEB_CONCURRENCY", 1))
    app = processes * (int(config.get("DB_POOL_SIZE", 5)) + int(config.get("DB_MAX_OVERFLOW", 5)))
    locks = (processes + len(values.get("cronJobs") or {})) * int(
        database.get("lockConnectionsPerProcess", 0)
    )
    migration = 2 if values.get("migration", {}).get("enabled") else 0
    total = app + locks + migration + int(database.get("extraConnections", 0))
    return total, int(database["maxConnections"]) - int(database["reservedConnections"])


def chart_connection_budget_problems(chart: Path) -> list[str]:
    """With PostgreSQL, the defaults fit the declared database, and values over the budget are
    refused with the arithmetic in the message."""
    values = read_yaml(chart / "values.yaml")
    if "database" not in values:
        if "DB_POOL_SIZE" in values.get("config", {}):
            return ["a chart with PostgreSQL declares no database.maxConnections budget"]
        return []
    problems = []
    total, limit = connection_budget(values)
    if total > limit:
        problems.append(f"default values open {total} database connections > {limit}")
    # The store's own budget is lifted, so that only the database's can refuse these values.
    over_values = {"autoscaling": {"enabled": True, "maxReplicas": 100}, **UNLIMITED_STORE}
    over_total, _ = connection_budget(_merge(values, over_values))
    try:
        render_chart(chart, over_values)
    except Exception as error:
        expected = f"{over_total} connections > database.maxConnections"
        if expected not in str(error) or "DB_POOL_SIZE + DB_MAX_OVERFLOW" not in str(error):
            problems.append(f"over-budget values refused without the arithmetic: {error}")
    else:
        problems.append(
            f"values with {over_total} database connections > {limit} render: must be refused"
        )
    # Two processes per pod (within the process budget): twice the pools and the job locks.
    doubled = {
        "config": {"WEB_CONCURRENCY": "2"},
        "resources": {"limits": {"cpu": "2"}},
        **UNLIMITED_STORE,
    }
    doubled_total, _ = connection_budget(_merge(values, doubled))
    if doubled_total <= limit:
        problems.append(f"two processes per pod fit the default budget ({doubled_total})")
    try:
        render_chart(chart, doubled)
    except Exception as error:
        expected = f"{doubled_total} connections > database.maxConnections"
        if expected not in str(error) or "x 2 processes x" not in str(error):
            problems.append(f"two processes per pod refused without their arithmetic: {error}")
    else:
        problems.append(
            f"two processes per pod ({doubled_total} database connections > {limit}) render: "
            "must be refused"
        )
    return problems


# Values that lift one budget, so that a check of the other sees its own refusal alone.
UNLIMITED_STORE = {"store": {"maxClients": 10**7}}
UNLIMITED_DATABASE = {"database": {"maxConnections": 10**7}}


def store_budget(values: Mapping[str, Any]) -> tuple[int, int]:
    """The worst-case connections of a release to the shared store and what the store accepts,
    computed here independently of the chart's own arithmetic (templates/store-budget.yaml)."""
    store, config = values["store"], values.get("config", {})
    autoscaling = values.get("autoscaling", {})
    replicas = int(
        autoscaling["maxReplicas"] if autoscaling.get("enabled") else values["replicaCount"]
    )
    surge = str(values.get("rollingUpdate", {}).get("maxSurge", "25%"))
    pods = replicas + (-(-replicas * int(surge[:-1]) // 100) if surge.endswith("%") else int(surge))
    # Every server process, and every CronJob run, has its own pools.
    per_process = int(config.get("STORE_MAX_CONNECTIONS", 20)) + int(
        store.get("jobsConnectionsPerProcess", 0)
    )
    processes = pods * int(config.get("WEB_CONCURRENCY", 1)) + len(values.get("cronJobs") or {})
    total = processes * per_process + int(store.get("extraConnections", 0))
    return total, int(store["maxClients"]) - int(store.get("reservedClients", 0))


def chart_store_budget_problems(chart: Path) -> list[str]:
    """The defaults fit the declared store, and values over the budget (more replicas, or more
    connections per process) are refused with the arithmetic in the message."""
    values = read_yaml(chart / "values.yaml")
    if "store" not in values:
        return ["the chart declares no store.maxClients budget"]
    problems = []
    total, limit = store_budget(values)
    if total > limit:
        problems.append(f"default values open {total} store connections > {limit}")
    # The database's budget, where there is one, is lifted: only the store's may refuse.
    lifted = UNLIMITED_DATABASE if "database" in values else {}
    for label, override in (
        ("400 replicas", {"autoscaling": {"enabled": True, "maxReplicas": 400}, **lifted}),
        ("STORE_MAX_CONNECTIONS 1000", {"config": {"STORE_MAX_CONNECTIONS": "1000"}, **lifted}),
    ):
        over_total, _ = store_budget(_merge(values, override))
        if over_total <= limit:
            problems.append(f"{label}: {over_total} store connections fit {limit}: not a test")
            continue
        try:
            render_chart(chart, override)
        except Exception as error:
            expected = f"store connection budget: {over_total} connections > store.maxClients"
            if expected not in str(error) or "STORE_MAX_CONNECTIONS" not in str(error):
                problems.append(f"{label}: refused without the arithmetic: {error}")
        else:
            problems.append(
                f"{label}: values with {over_total} store connections > {limit} render: "
                "must be refused"
            )
    return problems


_MEMORY_UNITS = {
    **{unit: 1024**power for power, unit in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
    **{unit: 1000**power for power, unit in enumerate(("k", "M", "G", "T", "P", "E"), 1)},
    "K": 1000,
}


def cpu_millicores(quantity: Any) -> int:
    """A Kubernetes CPU quantity in millicores: "2" or 2 -> 2000, 1.5 -> 1500, "500m" -> 500."""
    text = str(quantity).strip()
    if text.endswith("m"):
        return round(float(text[:-1]))
    return round(float(text) * 1000)


def memory_bytes(quantity: Any) -> int:
    """A Kubernetes memory quantity in bytes: "512Mi", "1G", "1.5Gi", "536870912"."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)", str(quantity).strip())
    if not match or match.group(2) not in {"", *_MEMORY_UNITS}:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return round(float(match.group(1)) * _MEMORY_UNITS.get(match.group(2), 1))


def _binary(size: int) -> str:
    """Bytes in the largest binary unit that divides them (671088640 -> 640Mi), else bytes."""
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        if size and size % _MEMORY_UNITS[unit] == 0:
            return f"{size // _MEMORY_UNITS[unit]}{unit}"
    return str(size)


def process_budget(values: Mapping[str, Any]) -> list[str]:
    """What the web container's limits cannot hold of its server processes, computed here
    independently of the chart (templates/process-budget.yaml): from two processes on a core
    each; memoryPerProcess each, and one more for the supervisor from two processes on. Empty
    when the limits hold them."""
    processes = int(values.get("config", {}).get("WEB_CONCURRENCY", 1))
    limits = (values.get("resources") or {}).get("limits") or {}
    over = []
    if processes > 1 and limits.get("cpu") and cpu_millicores(limits["cpu"]) < processes * 1000:
        over.append(
            f"resources.limits.cpu {limits['cpu']} = {cpu_millicores(limits['cpu'])}m < "
            f"config.WEB_CONCURRENCY {processes} processes x 1000m"
        )
    per_process = values.get("memoryPerProcess") or "160Mi"
    memories = processes + 1 if processes > 1 else 1
    needed = memories * memory_bytes(per_process)
    counted = (
        f"(config.WEB_CONCURRENCY {processes} processes + 1 supervisor)"
        if processes > 1
        else "config.WEB_CONCURRENCY 1 process"
    )
    if limits.get("memory") and memory_bytes(limits["memory"]) < needed:
        over.append(
            f"resources.limits.memory {limits['memory']} ({memory_bytes(limits['memory'])} bytes)"
            f" < {counted} x memoryPerProcess {per_process}"
            f" = {_binary(needed)} ({needed} bytes)"
        )
    return over


def chart_process_budget_problems(chart: Path) -> list[str]:
    """The defaults fit the web container's limits, two processes with a core each render, and
    more processes than the limits hold are refused with the arithmetic in the message."""
    values = read_yaml(chart / "values.yaml")
    if "WEB_CONCURRENCY" not in values.get("config", {}) or "memoryPerProcess" not in values:
        return ["the chart declares no config.WEB_CONCURRENCY and memoryPerProcess"]
    problems = [f"default values: {over}" for over in process_budget(values)]
    if process_budget(_merge(values, _TWO_PROCESSES)):
        over = process_budget(_merge(values, _TWO_PROCESSES))
        problems.append(f"the two-process values do not fit: {over}")
    try:
        render_chart(chart, _TWO_PROCESSES)
    except Exception as error:
        problems.append(f"two processes within their limits are refused: {error}")
    for label, (over_values, _) in REFUSED_VALUE_SETS.items():
        if not label.endswith(("-above-cpu", "-above-memory")):
            continue
        expected = process_budget(_merge(values, over_values))
        if len(expected) != 1:
            problems.append(f"values {label} exceed {len(expected)} limits, not one: {expected}")
            continue
        try:
            render_chart(chart, over_values)
        except Exception as error:
            if f"process budget: {expected[0]}" not in str(error):
                problems.append(f"values {label} refused without the arithmetic: {error}")
        else:
            problems.append(f"values {label} ({expected[0]}) render: must be refused")
    return problems


def check_chart(chart_dir: str, routes: list[str], release: str = "release") -> dict[str, Any]:
    """Every chart check; returns problems and the default manifests for checkov, rendered as
    `release`: checkov links objects of one scan by their labels, so charts scanned together
    need release names of their own (the selectors carry it) to be judged apart."""
    import helm_python as helm

    chart = Path(chart_dir)
    problems: list[str] = []
    default_docs: list[dict[str, Any]] = []
    kind = storage_kind(read_yaml(chart / "values.yaml"))
    value_sets = {**VALUE_SETS, **STORAGE_VALUE_SETS[kind]}
    verdicts: dict[str, list[str]] = {}
    refused_value_sets = {**REFUSED_VALUE_SETS, **STORAGE_REFUSED_VALUE_SETS[kind]}
    for label, values in value_sets.items():
        try:
            docs = render_chart(chart, values)
        except Exception as error:
            problems.append(f"values {label}: does not render: {error}")
            continue
        if label == "feature-flags":
            problems += flag_change_rolls_no_pod(chart, docs)
        if label == "default":
            default_docs = docs if release == "release" else render_chart(chart, {}, release)
        for doc in docs:
            # Most documents are alike across value sets: each distinct one is validated once.
            key = json.dumps(doc, sort_keys=True, default=str)
            if key not in verdicts:
                verdicts[key] = [p for v in KUBERNETES_VERSIONS for p in validate_manifest(doc, v)]
            problems += [f"values {label}: {p}" for p in verdicts[key]]
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
    problems += chart_connection_budget_problems(chart)
    problems += chart_store_budget_problems(chart)
    problems += chart_process_budget_problems(chart)
    values = read_yaml(chart / "values.yaml")
    readme = (
        (chart / "README.md").read_text(encoding="utf-8") if (chart / "README.md").is_file() else ""
    )
    undocumented = [p for p in value_paths(values) if f"`{p}`" not in readme]
    if undocumented:
        problems.append(f"chart README.md does not document values {undocumented}")
    manifests = "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in default_docs)
    return {"problems": problems, "manifests": manifests, "documents": len(default_docs)}
