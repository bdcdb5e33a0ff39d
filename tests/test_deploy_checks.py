"""The deployment checks of tier 1 can fail: the rendered default project passes them, and each
deliberate defect, made by editing a rendered chart, Compose file or pipeline, is reported."""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from combinations import default_combination
from deploy_checks import (
    NEWEST_KUBERNETES,
    OLDEST_KUBERNETES,
    Artifacts,
    chart_connection_budget_problems,
    check_chart,
    check_compose,
    check_workflow,
    compose_store_problems,
    connection_budget,
    dependency_bot_problems,
    duplicate_headings,
    image_smoke_script,
    manifest_invariants,
    markdown_problems,
    pod_spec,
    render_chart,
    route_paths,
    run_checkov,
    run_deploy_checks,
    validate_manifest,
    wording_problems,
)

pytestmark = [pytest.mark.tier1, pytest.mark.fast]

DEFAULT = default_combination()


def _render(renderer, tmp_path_factory, name: str, **answers: Any) -> Path:
    data = {**DEFAULT.data, **answers}
    return renderer(data, tmp_path_factory.mktemp(name) / "project")


@pytest.fixture(scope="module")
def project(renderer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _render(renderer, tmp_path_factory, "deploy-default", database="postgresql")


@pytest.fixture(scope="module")
def artifacts(project: Path) -> Artifacts:
    found = Artifacts.find(project)
    assert found.chart and found.compose and found.workflows and found.probes
    return found


@pytest.fixture(scope="module")
def routes(artifacts: Artifacts) -> set[str]:
    return route_paths(artifacts.probes)


@pytest.fixture(scope="module")
def manifests(artifacts: Artifacts) -> list[dict[str, Any]]:
    assert artifacts.chart
    return render_chart(artifacts.chart, {})


def test_rendered_chart_passes_every_check(artifacts: Artifacts, routes: set[str]) -> None:
    result = check_chart(str(artifacts.chart), sorted(routes))
    assert result["problems"] == []
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result["manifests"])}
    assert kinds >= {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "ServiceAccount", "ConfigMap", "NetworkPolicy", "Job",
    }  # fmt: skip


def test_probes_point_at_routes_the_service_serves(routes: set[str]) -> None:
    assert {"/startupz", "/livez", "/readyz"} <= routes


def test_rendered_compose_and_pipeline_pass(artifacts: Artifacts) -> None:
    assert check_compose(str(artifacts.compose), str(artifacts.haproxy)) == []
    for workflow in artifacts.workflows:
        assert check_workflow(str(workflow)) == [], workflow


def web_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def edit_manifests(edit: Callable[[list[dict[str, Any]]], None]):
    def apply(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        docs = copy.deepcopy(docs)
        edit(docs)
        return docs

    return apply


def _set(path: list[Any], value: Any, kind: str = "Deployment"):
    def edit(docs: list[dict[str, Any]]) -> None:
        target = next(d for d in docs if d["kind"] == kind)
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


POD = ["spec", "template", "spec"]
CONTAINER = [*POD, "containers", 0]
MANIFEST_DEFECTS = {
    "grace-too-short": (_set([*POD, "terminationGracePeriodSeconds"], 20), "> terminationGrace"),
    "no-prestop": (_set([*CONTAINER, "lifecycle"], {}), "preStop is not `sleep N`"),
    "liveness-on-readyz": (
        _set([*CONTAINER, "livenessProbe", "httpGet", "path"], "/readyz"),
        "livenessProbe does not GET /livez",
    ),
    "probe-wrong-port": (
        _set([*CONTAINER, "readinessProbe", "httpGet", "port"], "web"),
        "readinessProbe port 'web' is not a container port",
    ),
    "pdb-blocks-eviction": (
        _set(["spec", "maxUnavailable"], 0, kind="PodDisruptionBudget"),
        "PDB allows no eviction at 3 replicas",
    ),
    "pdb-min-all": (
        lambda docs: next(d for d in docs if d["kind"] == "PodDisruptionBudget")["spec"].update(
            {"minAvailable": "100%"}
        ),
        "PDB allows no eviction",
    ),
    "writable-root": (
        _set([*CONTAINER, "securityContext", "readOnlyRootFilesystem"], False),
        "readOnlyRootFilesystem not set",
    ),
    "capabilities-kept": (
        _set([*CONTAINER, "securityContext", "capabilities"], {}),
        "capabilities.drop ALL not set",
    ),
    "token-mounted": (
        _set([*POD, "automountServiceAccountToken"], True),
        "service account token mounted",
    ),
    "migrates-at-start": (_set([*CONTAINER, "args"], ["migrate"]), "runs migrate at start"),
    "job-not-hook": (
        lambda docs: next(d for d in docs if d["kind"] == "Job")["metadata"]["annotations"].pop(
            "helm.sh/hook"
        ),
        "is not a pre-install,pre-upgrade hook",
    ),
    "tag-not-pulled": (
        _set([*CONTAINER, "imagePullPolicy"], "IfNotPresent"),
        "image by tag pulled IfNotPresent",
    ),
    "service-selects-nothing": (
        _set(["spec", "selector", "app.kubernetes.io/component"], "other", kind="Service"),
        "Service selector does not match",
    ),
}


def test_rendered_manifests_keep_the_invariants(manifests, routes) -> None:
    assert manifest_invariants(manifests, routes) == []


@pytest.mark.parametrize("defect", MANIFEST_DEFECTS, ids=str)
def test_each_manifest_defect_is_reported(manifests, routes, defect: str) -> None:
    edit, expected = MANIFEST_DEFECTS[defect]
    problems = manifest_invariants(edit_manifests(edit)(manifests), routes)
    assert any(expected in p for p in problems), problems


def test_pull_policy_follows_the_digest(artifacts: Artifacts, routes) -> None:
    """helm template with a digest: IfNotPresent (the digest is one image); a digest pulled
    Always is reported."""
    assert artifacts.chart
    digest = "sha256:" + "ab" * 32
    docs = render_chart(artifacts.chart, {"image": {"digest": digest}})
    containers = [c for d in docs for c in (pod_spec(d) or {}).get("containers", [])]
    assert len(containers) >= 2  # the web Deployment and the migration Job
    assert {(c["image"].split("@")[1], c["imagePullPolicy"]) for c in containers} == {
        (digest, "IfNotPresent")
    }
    assert manifest_invariants(docs, routes) == []
    assert web_container(render_chart(artifacts.chart, {}))["imagePullPolicy"] == "Always"
    pinned = {"image": {"digest": digest, "pullPolicy": "Always"}}
    problems = manifest_invariants(render_chart(artifacts.chart, pinned), routes)
    assert any("image pinned by digest pulled Always" in p for p in problems), problems


def test_probe_on_a_route_the_service_lacks_is_reported(manifests, routes) -> None:
    problems = manifest_invariants(manifests, routes - {"/readyz"})
    assert any("which the service does not serve" in p for p in problems), problems


def test_manifests_validate_at_both_ends_and_unknown_kinds_fail(manifests) -> None:
    for doc in manifests:
        for version in (OLDEST_KUBERNETES, NEWEST_KUBERNETES):
            assert validate_manifest(doc, version) == []
    deployment = next(d for d in manifests if d["kind"] == "Deployment")
    unknown = {**deployment, "kind": "Deploymint"}
    assert "no schema" in validate_manifest(unknown, OLDEST_KUBERNETES)[0]
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    assert "invalid" in validate_manifest(typo, NEWEST_KUBERNETES)[0]


def _copy_chart(artifacts: Artifacts, tmp_path: Path) -> Path:
    assert artifacts.chart
    chart = tmp_path / artifacts.chart.name
    shutil.copytree(artifacts.chart, chart)
    return chart


def test_chart_defects_are_reported(artifacts: Artifacts, routes: set[str], tmp_path) -> None:
    """A template that ignores the shutdown budget, and a value the README does not document."""
    chart = _copy_chart(artifacts, tmp_path)
    configmap = chart / "templates/configmap.yaml"
    configmap.write_text(
        configmap.read_text().replace('{{- include "app.checkShutdownBudget" . }}\n', "")
    )
    values = chart / "values.yaml"
    values.write_text(values.read_text() + "undocumentedKnob: 1\n")
    schema = chart / "values.schema.json"
    schema.write_text(
        schema.read_text().replace('"global": {', '"undocumentedKnob": {}, "global": {', 1)
    )
    problems = "\n".join(check_chart(str(chart), sorted(routes))["problems"])
    assert "values grace-below-budget render, but the chart must refuse them" in problems
    assert "does not document values ['undocumentedKnob']" in problems


def test_connection_budget_fits_by_default_and_is_enforced(artifacts: Artifacts, tmp_path) -> None:
    """PostgreSQL's default max_connections holds the defaults; without the chart's check, values
    over the budget would render, and the check reports it."""
    chart = _copy_chart(artifacts, tmp_path)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    total, limit = connection_budget(values)
    assert (total, limit) == (54, 97)  # 13 pods x (3 + 1) + 2 (migration) <= 100 - 3
    assert chart_connection_budget_problems(chart) == []
    configmap = chart / "templates/configmap.yaml"
    configmap.write_text(
        configmap.read_text().replace('{{- include "app.checkConnectionBudget" . }}\n', "")
    )
    problems = chart_connection_budget_problems(chart)
    assert any("render: must be refused" in p for p in problems), problems


def test_memcached_store_without_a_bound_or_with_eviction_is_reported() -> None:
    def store(*command: str) -> dict[str, Any]:
        return {"store": {"image": "memcached:1.6-alpine", "command": list(command)}}

    assert compose_store_problems(store("memcached", "-m", "256", "-M")) == []
    assert compose_store_problems(store("memcached", "-m", "256"))  # evicts when full
    assert compose_store_problems(store("memcached", "-M"))  # default 64 MB, unstated


def _edited_yaml(path: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    document = yaml.safe_load(path.read_text())
    edit(document)
    out = tmp_path / path.name
    out.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(out)


COMPOSE_DEFECTS = {
    "no-replicas": (lambda c: c["services"]["app"].pop("deploy"), "app has no deploy.replicas"),
    "published-app": (
        lambda c: c["services"]["app"].update({"ports": ["8000:8000"]}),
        "app publishes ports",
    ),
    "no-healthcheck": (
        lambda c: c["services"]["store"].pop("healthcheck"),
        "service store has no healthcheck",
    ),
    "no-migrate-wait": (
        lambda c: c["services"]["app"]["depends_on"].pop("migrate"),
        "app does not wait for migrate",
    ),
    "short-stop": (
        lambda c: c["services"]["app"].update({"stop_grace_period": "10s"}),
        "stop_grace_period is shorter",
    ),
    "schema": (lambda c: c["services"]["lb"].update({"ports": 8080}), "compose-spec schema"),
    "store-unbounded": (
        lambda c: c["services"]["store"].pop("command"),
        "store: no --maxmemory bound",
    ),
    "store-evicts": (
        lambda c: c["services"]["store"].update(
            command=["redis-server", "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"]
        ),
        "--maxmemory-policy is not noeviction",
    ),
    "slots-not-replicas": (
        lambda c: c["services"]["lb"]["environment"].update({"APP_REPLICAS": "10"}),
        "the balancer's slots (APP_REPLICAS=10) are not app's replicas",
    ),
}

HAPROXY_DEFECTS = {
    "fixed-slots": (
        lambda t: re.sub(r'server-template app "\$\{APP_REPLICAS\}"', "server-template app 10", t),
        "haproxy.cfg has 10 server slots",
    ),
    "post-retried": (
        lambda t: re.sub(r"(?m)^\s*http-request disable-l7-retry.*\n", "", t),
        "a POST could be applied twice",
    ),
}


@pytest.mark.parametrize("defect", HAPROXY_DEFECTS, ids=str)
def test_each_haproxy_defect_is_reported(artifacts: Artifacts, tmp_path: Path, defect: str) -> None:
    edit, expected = HAPROXY_DEFECTS[defect]
    assert artifacts.haproxy
    cfg = tmp_path / "haproxy.cfg"
    edited = edit(artifacts.haproxy.read_text())
    assert edited != artifacts.haproxy.read_text()
    cfg.write_text(edited)
    problems = check_compose(str(artifacts.compose), str(cfg))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("defect", COMPOSE_DEFECTS, ids=str)
def test_each_compose_defect_is_reported(artifacts: Artifacts, tmp_path: Path, defect: str) -> None:
    edit, expected = COMPOSE_DEFECTS[defect]
    assert artifacts.compose
    path = _edited_yaml(artifacts.compose, tmp_path, edit)
    problems = check_compose(path, str(artifacts.haproxy))
    assert any(expected in p for p in problems), problems


def test_broken_haproxy_config_is_reported(artifacts: Artifacts, tmp_path: Path) -> None:
    assert artifacts.haproxy
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(artifacts.haproxy.read_text().replace("balance roundrobin", "balance nonsense"))
    problems = check_compose(str(artifacts.compose), str(cfg))
    assert any("haproxy -c failed" in p for p in problems), problems


WORKFLOW_DEFECTS = {
    "tag-pinned": (
        lambda t: t.replace(
            "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2",
            "actions/checkout@v4",
        ),
        "not pinned by full commit SHA",
    ),
    "write-all": (
        lambda t: t.replace("permissions:\n  contents: read", "permissions: write-all"),
        "not least privilege",
    ),
    "no-timeout": (
        lambda t: t.replace("    timeout-minutes: 10\n", "", 1),
        "has no timeout-minutes",
    ),
    "schema": (lambda t: t.replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1), "schema"),
    "actionlint": (
        lambda t: t.replace("run: uv run mypy", "run: uv run mypy ${{ github.evnt.name }}"),
        "actionlint",
    ),
}


@pytest.mark.parametrize("defect", WORKFLOW_DEFECTS, ids=str)
def test_each_workflow_defect_is_reported(
    artifacts: Artifacts, tmp_path: Path, defect: str
) -> None:
    edit, expected = WORKFLOW_DEFECTS[defect]
    source = next(w for w in artifacts.workflows if w.suffix == ".yml" and "github" in str(w))
    edited = edit(source.read_text())
    assert edited != source.read_text(), f"{defect}: the edit no longer applies"
    path = tmp_path / ".github/workflows/ci.yml"
    path.parent.mkdir(parents=True)
    path.write_text(edited)
    problems = check_workflow(str(path))
    assert any(expected in p for p in problems), problems


def test_gitlab_pipeline_checks(renderer, tmp_path_factory, tmp_path: Path) -> None:
    tree = _render(renderer, tmp_path_factory, "deploy-gitlab", ci_provider="gitlab")
    pipeline = tree / ".gitlab-ci.yml"
    assert check_workflow(str(pipeline)) == []
    bad = tmp_path / ".gitlab-ci.yml"
    bad.write_text(
        pipeline.read_text().replace("stage: check", "stage: check\n  when: sometimes", 1)
    )
    assert any("gitlab-ci schema" in p for p in check_workflow(str(bad)))


def test_both_pipelines_check_the_image_the_same_way(
    artifacts: Artifacts, renderer, tmp_path_factory, tmp_path: Path
) -> None:
    """GitHub's and GitLab's image jobs run one script: start, probe, SIGTERM, exit code 0."""
    tree = _render(renderer, tmp_path_factory, "deploy-gitlab-image", ci_provider="gitlab")
    github = next(w for w in artifacts.workflows if w.name == "ci.yml")
    scripts = [
        image_smoke_script(yaml.safe_load(path.read_text()))
        for path in (github, tree / ".gitlab-ci.yml")
    ]
    assert scripts[0] is not None and scripts[0] == scripts[1]
    for label, edit in {
        "docker stop --time 30 smoke": ("stop it with SIGTERM", "docker kill smoke"),
        'test "$status" = 0': ("require exit code 0", "true"),
    }.items():
        bad = tmp_path / label.split()[0] / ".gitlab-ci.yml"
        bad.parent.mkdir()
        bad.write_text((tree / ".gitlab-ci.yml").read_text().replace(label, edit[1]))
        assert f"the image job does not {edit[0]}" in "\n".join(check_workflow(str(bad)))


def test_checkov_failures_are_attributed(manifests) -> None:
    """A privileged container fails checkov, and the failure lands on the artifact it came from."""
    bad = copy.deepcopy(manifests)
    context = web_container(bad)["securityContext"]
    context.update({"privileged": True, "allowPrivilegeEscalation": True})
    context.pop("readOnlyRootFilesystem")
    failed, totals = run_checkov(
        {
            "good": {"manifests.yaml": "---\n".join(yaml.safe_dump(d) for d in manifests)},
            "bad": {"manifests.yaml": "---\n".join(yaml.safe_dump(d) for d in bad)},
        }
    )
    assert failed["good"] == []
    assert any("CKV_K8S_16" in p for p in failed["bad"]), failed["bad"]  # privileged
    assert totals["failed"] >= 1 and totals["passed"] > 0


def test_settings_must_be_documented_names(project: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(project, tree)
    values = next(tree.glob("deploy/helm/*/values.yaml"))
    values.write_text(values.read_text().replace("  LOG_LEVEL: INFO", "  LOGLEVEL: INFO"))
    problems = run_deploy_checks([tree]).problems["tree"]
    assert any("chart config sets ['LOGLEVEL']" in p for p in problems), problems


def test_the_templates_own_workflow_keeps_the_same_rules() -> None:
    """actionlint, the workflow schema, SHA-pinned actions, least privilege, timeouts."""
    workflow = Path(__file__).resolve().parent.parent / ".github/workflows/ci.yml"
    assert check_workflow(str(workflow)) == []


# --- storage: every provider's chart and Compose file, and the defects the checks must catch ----

STORAGE_PROVIDERS = ("s3", "gcs", "azure", "local")


@pytest.fixture(scope="module")
def storage_projects(renderer, tmp_path_factory) -> dict[str, Path]:
    return {
        provider: _render(
            renderer, tmp_path_factory, f"deploy-{provider}", storage_provider=provider
        )
        for provider in STORAGE_PROVIDERS
    }


def test_every_storage_provider_passes_the_deployment_checks(
    storage_projects: dict[str, Path],
) -> None:
    report = run_deploy_checks(storage_projects.values())
    assert report.problems == {tree.name: [] for tree in storage_projects.values()}
    for provider, tree in storage_projects.items():
        values = yaml.safe_load(next(tree.glob("deploy/helm/*/values.yaml")).read_text())
        compose = yaml.safe_load((tree / "compose.yaml").read_text())
        env = compose["services"]["app"]["environment"]
        if provider == "local":
            assert values["sharedStorage"]["enabled"] is True
            assert values["config"]["STORAGE_LOCAL_SHARED"] == env["STORAGE_LOCAL_SHARED"] == "true"
            assert "storage-data:/srv/storage" in compose["services"]["app"]["volumes"]
        else:
            assert values["config"]["STORAGE_BUCKET"] == env["STORAGE_BUCKET"]
            assert values["networkPolicy"]["storageEgress"][0]["ports"][0]["port"] == 443
            emulator = {"s3": "minio", "gcs": "gcs", "azure": "azurite"}[provider]
            assert f"//{emulator}:" in env["STORAGE_ENDPOINT_URL"]
            image = compose["services"][emulator]["image"]
            assert ":" in image and not image.endswith(":latest"), image


def _manifests_of(tree: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return render_chart(next(tree.glob("deploy/helm/*")), values or {})


def test_local_storage_renders_a_shared_claim_mounted_by_every_replica(
    storage_projects: dict[str, Path],
) -> None:
    docs = _manifests_of(storage_projects["local"])
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert mount["mountPath"] == "/srv/storage"
    existing = _manifests_of(storage_projects["local"], {"sharedStorage": {"existingClaim": "nfs"}})
    assert not any(d["kind"] == "PersistentVolumeClaim" for d in existing)


def _drop_shared_mount(docs: list[dict[str, Any]]) -> None:
    container = web_container(docs)
    container["volumeMounts"] = [
        m for m in container["volumeMounts"] if m["name"] != "shared-files"
    ]


STORAGE_MANIFEST_DEFECTS = {
    "local": {
        "claim-not-mounted": (_drop_shared_mount, "is not a mounted volume claim"),
        "claim-read-write-once": (
            _set(["spec", "accessModes"], ["ReadWriteOnce"], kind="PersistentVolumeClaim"),
            "is not ReadWriteMany",
        ),
        "undeclared-in-production": (
            lambda docs: next(d for d in docs if d["kind"] == "ConfigMap")["data"].update(
                {"STORAGE_LOCAL_SHARED": "false"}
            ),
            "not declared shared",
        ),
    },
    "s3": {
        "egress-without-https": (
            lambda docs: next(d for d in docs if d["kind"] == "NetworkPolicy")["spec"].update(
                {"policyTypes": ["Ingress", "Egress"], "egress": [{"ports": [{"port": 53}]}]}
            ),
            "restricts egress without HTTPS",
        ),
    },
}


@pytest.mark.parametrize(
    ("provider", "defect"),
    [(p, d) for p, defects in STORAGE_MANIFEST_DEFECTS.items() for d in defects],
    ids=lambda v: str(v),
)
def test_each_storage_manifest_defect_is_reported(
    storage_projects: dict[str, Path], provider: str, defect: str
) -> None:
    tree = storage_projects[provider]
    docs = _manifests_of(tree)
    routes = route_paths(Artifacts.find(tree).probes)
    assert manifest_invariants(docs, routes) == []
    edit, expected = STORAGE_MANIFEST_DEFECTS[provider][defect]
    problems = manifest_invariants(edit_manifests(edit)(docs), routes)
    assert any(expected in p for p in problems), problems


def test_restricted_egress_keeps_https_to_object_storage(storage_projects) -> None:
    restricted = {"networkPolicy": {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}}
    for provider in ("s3", "gcs", "azure"):
        docs = _manifests_of(storage_projects[provider], restricted)
        policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
        ports = [p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])]
        assert {53, 443} <= set(ports), (provider, policy["spec"]["egress"])


def test_local_chart_refuses_unshared_production_even_without_the_schema(
    storage_projects: dict[str, Path], tmp_path: Path
) -> None:
    """Two guards: the values schema, and the template's own `fail` (which also holds under
    `helm template --skip-schema-validation`). Without both, check_chart reports it."""
    tree = storage_projects["local"]
    chart = tmp_path / "chart"
    shutil.copytree(next(tree.glob("deploy/helm/*")), chart)
    (chart / "values.schema.json").unlink()
    with pytest.raises(Exception, match=r"sharedStorage\.enabled must be true"):
        render_chart(chart, {"sharedStorage": {"enabled": False}})
    template = chart / "templates/shared-storage.yaml"
    template.write_text(
        template.read_text().replace("{{- fail ", "{{- /* fail */}}{{- $_ := list ")
    )
    problems = check_chart(str(chart), sorted(route_paths(Artifacts.find(tree).probes)))["problems"]
    assert any(
        "values unshared-production render, but the chart must refuse" in p for p in problems
    )


STORAGE_COMPOSE_DEFECTS = {
    "local": {
        "no-shared-volume": (
            lambda c: c["services"]["app"].pop("volumes"),
            "is not a named volume mounted by app",
        ),
        "not-declared": (
            lambda c: c["services"]["app"]["environment"].update({"STORAGE_LOCAL_SHARED": "false"}),
            "not declared shared",
        ),
    },
    "s3": {
        "no-bucket-wait": (
            lambda c: c["services"]["app"]["depends_on"].pop("storage-init"),
            "does not wait for a healthy storage service minio",
        ),
        "unknown-endpoint": (
            lambda c: c["services"]["app"]["environment"].update(
                {"STORAGE_ENDPOINT_URL": "http://s3mock:9090"}
            ),
            "names s3mock, which is not a service",
        ),
    },
    "azure": {
        "emulator-without-healthcheck": (
            lambda c: c["services"]["azurite"].pop("healthcheck"),
            "service azurite has no healthcheck",
        ),
    },
}


@pytest.mark.parametrize(
    ("provider", "defect"),
    [(p, d) for p, defects in STORAGE_COMPOSE_DEFECTS.items() for d in defects],
    ids=lambda v: str(v),
)
def test_each_storage_compose_defect_is_reported(
    storage_projects: dict[str, Path], tmp_path: Path, provider: str, defect: str
) -> None:
    found = Artifacts.find(storage_projects[provider])
    assert found.compose
    edit, expected = STORAGE_COMPOSE_DEFECTS[provider][defect]
    problems = check_compose(_edited_yaml(found.compose, tmp_path, edit), str(found.haproxy))
    assert any(expected in p for p in problems), problems


def test_pipeline_without_azurite_is_reported(storage_projects: dict[str, Path], tmp_path) -> None:
    """The Azure storage tests start Azurite, a Node package: the test job must install it."""
    tree = tmp_path / "tree"
    shutil.copytree(storage_projects["azure"], tree)
    workflow = tree / ".github/workflows/ci.yml"
    text = workflow.read_text()
    assert "npm install -g azurite@3.35.0" in text
    workflow.write_text(text.replace("npm install -g azurite@3.35.0", "npm --version"))
    problems = run_deploy_checks([tree]).problems["tree"]
    assert any("does not install azurite@3.35.0" in p for p in problems), problems


# --- scheduled jobs: the CronJob and Celery workloads, and the defects the checks must catch ----

SCHEDULERS = {
    "cronjob": {"scheduler": "cronjob"},
    "celery": {"scheduler": "celery"},
    "inprocess": {"scheduler": "inprocess"},
    "celery-compose": {"scheduler": "celery", "deployment_target": "compose"},
}


@pytest.fixture(scope="module")
def job_projects(renderer, tmp_path_factory) -> dict[str, Path]:
    return {
        label: _render(renderer, tmp_path_factory, f"deploy-{label}", **answers)
        for label, answers in SCHEDULERS.items()
    }


def test_every_scheduler_passes_the_deployment_checks(job_projects: dict[str, Path]) -> None:
    report = run_deploy_checks(job_projects.values())
    assert report.problems == {tree.name: [] for tree in job_projects.values()}
    cron = _manifests_of(job_projects["cronjob"])
    job = next(d for d in cron if d["kind"] == "CronJob")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["run-job", "rollup_events"]
    celery = {
        _component_of(d): d
        for d in _manifests_of(job_projects["celery"])
        if d["kind"] == "Deployment"
    }
    assert celery["beat"]["spec"]["replicas"] == 1
    assert celery["worker"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120
    assert not any(d["kind"] == "CronJob" for d in _manifests_of(job_projects["inprocess"]))
    services = yaml.safe_load((job_projects["celery-compose"] / "compose.yaml").read_text())
    assert services["services"]["beat"]["command"] == ["celery-beat"]
    assert "--ping" in services["services"]["worker"]["healthcheck"]["test"]


def _component_of(doc: dict[str, Any]) -> str:
    return doc["metadata"]["labels"].get("app.kubernetes.io/component", "")


def _edit_kind(kind: str, component: str | None, edit: Callable[[dict[str, Any]], None]):
    def apply(docs: list[dict[str, Any]]) -> None:
        edit(
            next(
                d
                for d in docs
                if d["kind"] == kind and (component is None or _component_of(d) == component)
            )
        )

    return apply


JOB_MANIFEST_DEFECTS = {
    "cronjob": {
        "overlapping-runs": (
            _edit_kind("CronJob", None, lambda d: d["spec"].update(concurrencyPolicy="Allow")),
            "concurrencyPolicy is not Forbid",
        ),
        "no-starting-deadline": (
            _edit_kind("CronJob", None, lambda d: d["spec"].pop("startingDeadlineSeconds")),
            "no startingDeadlineSeconds",
        ),
        "unbounded-history": (
            _edit_kind("CronJob", None, lambda d: d["spec"].pop("failedJobsHistoryLimit")),
            "no failedJobsHistoryLimit",
        ),
        "local-time": (
            _edit_kind("CronJob", None, lambda d: d["spec"].pop("timeZone")),
            "schedule not in UTC",
        ),
        "serves-instead-of-job": (
            _edit_kind(
                "CronJob",
                None,
                lambda d: d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][
                    0
                ].update(args=["serve"]),
            ),
            "does not run `run-job NAME`",
        ),
    },
    "celery": {
        "three-beats": (
            _edit_kind("Deployment", "beat", lambda d: d["spec"].update(replicas=3)),
            "one sends, a second waits",
        ),
        "beat-rolling-update": (
            _edit_kind("Deployment", "beat", lambda d: d["spec"].update(strategy={})),
            "does not roll out with Recreate",
        ),
        "worker-liveness-on-http": (
            _edit_kind(
                "Deployment",
                "worker",
                lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
                    livenessProbe={"httpGet": {"path": "/livez", "port": 8000}}
                ),
            ),
            "liveness probe is not its --ping",
        ),
        "no-beat": (
            lambda docs: docs.remove(
                next(d for d in docs if d["kind"] == "Deployment" and _component_of(d) == "beat")
            ),
            "a Celery beat needs a worker",
        ),
        "worker-pdb-blocks-drain": (
            _edit_kind(
                "PodDisruptionBudget", "worker", lambda d: d["spec"].update(maxUnavailable=0)
            ),
            "PDB allows no eviction at 2 replicas",
        ),
    },
}


@pytest.mark.parametrize(
    ("scheduler", "defect"),
    [(s, d) for s, defects in JOB_MANIFEST_DEFECTS.items() for d in defects],
    ids=lambda v: str(v),
)
def test_each_job_manifest_defect_is_reported(
    job_projects: dict[str, Path], scheduler: str, defect: str
) -> None:
    tree = job_projects[scheduler]
    docs = _manifests_of(tree)
    routes = route_paths(Artifacts.find(tree).probes)
    assert manifest_invariants(docs, routes) == []
    edit, expected = JOB_MANIFEST_DEFECTS[scheduler][defect]
    problems = manifest_invariants(edit_manifests(edit)(docs), routes)
    assert any(expected in p for p in problems), problems


JOB_COMPOSE_DEFECTS = {
    "two-beats": (
        lambda c: c["services"]["beat"]["deploy"].update(replicas=2),
        "beat runs more than one Celery beat",
    ),
    "worker-checked-over-http": (
        lambda c: c["services"]["worker"].update(
            healthcheck={"test": ["CMD", "curl", "-f", "http://127.0.0.1:8000/livez"]}
        ),
        "health check is not its --ping",
    ),
    "no-worker": (lambda c: c["services"].pop("worker"), "a Celery beat needs a worker"),
}


@pytest.mark.parametrize("defect", JOB_COMPOSE_DEFECTS, ids=str)
def test_each_job_compose_defect_is_reported(
    job_projects: dict[str, Path], tmp_path: Path, defect: str
) -> None:
    found = Artifacts.find(job_projects["celery-compose"])
    assert found.compose
    edit, expected = JOB_COMPOSE_DEFECTS[defect]
    problems = check_compose(_edited_yaml(found.compose, tmp_path, edit), str(found.haproxy))
    assert any(expected in p for p in problems), problems


# --- what the rendered files say: only the chosen database, storage, store and scheduler ---------


@pytest.fixture(scope="module")
def memcached_project(renderer, tmp_path_factory) -> Path:
    return _render(
        renderer, tmp_path_factory, "deploy-memcached", cache_backend="memcached",
        database="postgresql", storage_provider="local", scheduler="cronjob",
    )  # fmt: skip


def test_rendered_files_name_only_what_the_answers_chose(
    project: Path, storage_projects: dict[str, Path], memcached_project: Path
) -> None:
    """No migration Job or database budget without a database, no "S3-compatible" in an Azure
    chart, no Redis URL with Memcached, no heading twice (the tier 1 run checks every
    combination the same way)."""
    for tree in [project, memcached_project, *storage_projects.values()]:
        assert wording_problems(tree) == [], tree
        assert markdown_problems(tree) == [], tree
    for tree in storage_projects.values():  # database none
        assert not list(tree.glob("deploy/helm/*/templates/migration-job.yaml"))
        values = yaml.safe_load(next(tree.glob("deploy/helm/*/values.yaml")).read_text())
        assert "migration" not in values


def _append(rel: str, text: str) -> Callable[[Path], None]:
    def edit(tree: Path) -> None:
        path = next(tree.glob(rel))
        path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")

    return edit


WORDING_DEFECTS = {
    "migration-without-database": (
        "s3",
        _append("deploy/helm/*/values.yaml", "migration:\n  enabled: false\n"),
        "names a database",
    ),
    "s3-wording-in-azure": (
        "azure",
        _append("deploy/helm/*/README.md", "\nAn S3-compatible endpoint.\n"),
        "names another storage provider",
    ),
    "bucket-in-local": (
        "local",
        _append("deploy/helm/*/templates/NOTES.txt", "\nFiles go to the bucket.\n"),
        "names object storage",
    ),
    "redis-with-memcached": (
        "memcached",
        _append("compose.yaml", "# STORE_URL=redis://store:6379/0\n"),
        "names another store",
    ),
    "celery-with-inprocess": (
        "gcs",
        _append("deploy/helm/*/values.yaml", "# Celery runs the jobs.\n"),
        "names another scheduler",
    ),
    "heading-twice": (
        "s3",
        _append("deploy/helm/*/README.md", "\n## Availability\n\nAgain.\n"),
        "heading 'Availability' twice",
    ),
}


@pytest.mark.parametrize("defect", WORDING_DEFECTS, ids=str)
def test_each_wording_defect_is_reported(
    storage_projects: dict[str, Path], memcached_project: Path, tmp_path: Path, defect: str
) -> None:
    which, edit, expected = WORDING_DEFECTS[defect]
    source = memcached_project if which == "memcached" else storage_projects[which]
    tree = tmp_path / "tree"
    shutil.copytree(source, tree)
    edit(tree)
    problems = wording_problems(tree) + markdown_problems(tree)
    assert any(expected in p for p in problems), problems


def test_headings_in_code_blocks_are_not_headings() -> None:
    text = "# A\n\n```bash\n# A comment\n# A\n```\n\n## B\n"
    assert duplicate_headings(text) == []
    assert duplicate_headings(text + "\n## b\n") == ["b"]


# --- the dependency bot: Dependabot on GitHub, Renovate on GitLab -------------------------------


def _bot_trees(renderer, tmp_path_factory) -> dict[str, Path]:
    return {
        f"{ci}-{target}": _render(
            renderer, tmp_path_factory, f"deploy-bot-{ci}-{target}",
            ci_provider=ci, deployment_target=target,
        )
        for ci in ("github", "gitlab")
        for target in ("kubernetes", "compose")
    }  # fmt: skip


@pytest.fixture(scope="module")
def bot_trees(renderer, tmp_path_factory) -> dict[str, Path]:
    return _bot_trees(renderer, tmp_path_factory)


def test_each_provider_renders_its_dependency_bot(bot_trees: dict[str, Path]) -> None:
    """Dependabot for GitHub, Renovate for GitLab: schema-valid, covering uv, Docker, Compose,
    the pipeline, and the chart only where there is one."""
    for label, tree in bot_trees.items():
        chart = next(tree.glob("deploy/helm/*"), None)
        assert dependency_bot_problems(tree, chart) == [], label
        assert wording_problems(tree) == [], label
    github = yaml.safe_load((bot_trees["github-kubernetes"] / ".github/dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in github["updates"]} == {
        "uv", "docker", "docker-compose", "github-actions", "helm",
    }  # fmt: skip
    assert not (bot_trees["github-kubernetes"] / ".gitlab").exists()
    assert not (bot_trees["gitlab-compose"] / ".github").exists()


BOT_DEFECTS = {
    "no-dependabot": ("github-kubernetes", ".github/dependabot.yml", None, "no .github/dependabot"),
    "dependabot-without-uv": (
        "github-kubernetes", ".github/dependabot.yml",
        lambda t: t.replace("package-ecosystem: uv", "package-ecosystem: pip"),
        "does not update [('uv', '/')]",
    ),
    "dependabot-schema": (
        "github-compose", ".github/dependabot.yml",
        lambda t: t.replace("interval: weekly", "interval: fortnightly", 1),
        "dependabot schema",
    ),
    "no-renovate": ("gitlab-compose", ".gitlab/renovate.json", None, "no .gitlab/renovate.json"),
    "renovate-without-helm": (
        "gitlab-kubernetes", ".gitlab/renovate.json",
        lambda t: t.replace(', "helmv3", "helm-values"', ""),
        "does not enable the managers ['helm-values', 'helmv3']",
    ),
    "renovate-schema": (
        "gitlab-kubernetes", ".gitlab/renovate.json",
        lambda t: t.replace('"enabled": true', '"enabled": "yes"'),
        "renovate schema",
    ),
}  # fmt: skip


@pytest.mark.parametrize("defect", BOT_DEFECTS, ids=str)
def test_each_dependency_bot_defect_is_reported(
    bot_trees: dict[str, Path], tmp_path: Path, defect: str
) -> None:
    which, rel, edit, expected = BOT_DEFECTS[defect]
    tree = tmp_path / "tree"
    shutil.copytree(bot_trees[which], tree)
    path = tree / rel
    if edit is None:
        path.unlink()
    else:
        edited = edit(path.read_text())
        assert edited != path.read_text(), f"{defect}: the edit no longer applies"
        path.write_text(edited)
    problems = dependency_bot_problems(tree, next(tree.glob("deploy/helm/*"), None))
    assert any(expected in p for p in problems), problems
