"""The deployment checks of tier 1 can fail: the rendered projects pass them, and each deliberate
defect in DEFECTS (one row: the artifact, the project it is made in, the edit, the finding it must
produce) is reported by the checker of that artifact."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from combinations import default_combination
from deploy_checks import (
    NEWEST_KUBERNETES,
    OLDEST_KUBERNETES,
    Artifacts,
    DeployReport,
    chart_connection_budget_problems,
    chart_store_budget_problems,
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
    store_budget,
    validate_manifest,
    wording_problems,
)
from deploy_checks.chart import chart_process_budget_problems, process_budget

pytestmark = [pytest.mark.tier1, pytest.mark.fast]

DEFAULT = default_combination()

# The projects the checks and the defects are made in: the default answers plus these. Projects
# with the same answers are rendered once; each tree is named by the label that rendered it, so a
# report of several trees keeps one entry per tree.
PROJECTS: dict[str, dict[str, Any]] = {
    "default": {"database": "postgresql"},
    "gitlab": {"ci_provider": "gitlab"},
    **{p: {"storage_provider": p} for p in ("s3", "gcs", "azure", "local")},
    "cronjob": {"scheduler": "cronjob"},
    "celery": {"scheduler": "celery"},
    "inprocess": {"scheduler": "inprocess"},
    "celery-compose": {"scheduler": "celery", "deployment_target": "compose"},
    "memcached": {
        "cache_backend": "memcached", "database": "postgresql",
        "storage_provider": "local", "scheduler": "cronjob",
    },
    **{
        f"{ci}-{target}": {"ci_provider": ci, "deployment_target": target}
        for ci in ("github", "gitlab")
        for target in ("kubernetes", "compose")
    },
}  # fmt: skip
STORAGE_PROVIDERS = ("s3", "gcs", "azure", "local")
SCHEDULERS = ("cronjob", "celery", "inprocess", "celery-compose")
BOT_TREES = ("github-kubernetes", "github-compose", "gitlab-kubernetes", "gitlab-compose")


class Projects:
    """Renders a project of PROJECTS the first time it is asked for."""

    def __init__(self, renderer, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._render = renderer
        self._root = tmp_path_factory.mktemp("deploy")
        self._trees: dict[str, Path] = {}

    def __getitem__(self, label: str) -> Path:
        data = {**DEFAULT.data, **PROJECTS[label]}
        key = json.dumps(data, sort_keys=True, default=str)
        if key not in self._trees:
            self._trees[key] = self._render(data, self._root / label)
        return self._trees[key]

    def some(self, labels: tuple[str, ...]) -> dict[str, Path]:
        return {label: self[label] for label in labels}


@pytest.fixture(scope="module")
def projects(renderer, tmp_path_factory: pytest.TempPathFactory) -> Projects:
    return Projects(renderer, tmp_path_factory)


@pytest.fixture(scope="module")
def project(projects: Projects) -> Path:
    return projects["default"]


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


def _manifests_of(tree: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return render_chart(next(tree.glob("deploy/helm/*")), values or {})


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


def test_rendered_manifests_keep_the_invariants(manifests, routes) -> None:
    assert manifest_invariants(manifests, routes) == []


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


def test_cached_validation_agrees_with_kubernetes_validate(manifests) -> None:
    """The cached validators give the library's own verdict, for valid and invalid documents
    and for a kind the oldest Kubernetes lacks."""
    import kubernetes_validate

    deployment = next(d for d in manifests if d["kind"] == "Deployment")
    typo = copy.deepcopy(deployment)
    typo["spec"]["replicas"] = "two"
    newer_only = {**deployment, "apiVersion": "autoscaling/v2beta9"}
    for doc in [*manifests, typo, newer_only]:
        for version in (OLDEST_KUBERNETES, NEWEST_KUBERNETES):
            try:
                kubernetes_validate.validate(dict(doc), version, strict=True)
                library = "valid"
            except kubernetes_validate.ValidationError as error:
                library = f"invalid: {error.message} at {list(error.path)}"
            except kubernetes_validate.utils.SchemaNotFoundError:
                library = "no schema"
            ours = validate_manifest(doc, version)
            verdict = ours[0].split(": ", 1)[1] if ours else "valid"
            verdict = verdict.replace(f"invalid for Kubernetes {version}:", "invalid:")
            verdict = "no schema" if verdict.startswith("no schema") else verdict
            assert verdict == library, (doc["kind"], version)


def test_chart_defects_are_reported(artifacts: Artifacts, routes: set[str], tmp_path) -> None:
    """Templates that ignore the shutdown and process budgets, and a value the README does not
    document (one check_chart run for all: it renders every value set)."""
    assert artifacts.chart
    chart = tmp_path / artifacts.chart.name
    shutil.copytree(artifacts.chart, chart)
    configmap = chart / "templates/configmap.yaml"
    configmap.write_text(
        configmap.read_text().replace('{{- include "app.checkShutdownBudget" . }}\n', "")
    )
    budget = chart / "templates/process-budget.yaml"
    budget.write_text(budget.read_text().replace('{{- include "app.checkProcessBudget" . }}', ""))
    values = chart / "values.yaml"
    values.write_text(values.read_text() + "undocumentedKnob: 1\n")
    schema = chart / "values.schema.json"
    schema.write_text(
        schema.read_text().replace('"global": {', '"undocumentedKnob": {}, "global": {', 1)
    )
    problems = "\n".join(check_chart(str(chart), sorted(routes))["problems"])
    assert "values grace-below-budget render, but the chart must refuse them" in problems
    assert "values processes-above-cpu render, but the chart must refuse them" in problems
    assert "does not document values ['undocumentedKnob']" in problems


def test_connection_budget_fits_by_default_and_is_enforced(artifacts: Artifacts, tmp_path) -> None:
    """PostgreSQL's default max_connections holds the defaults; without the chart's check, values
    over the budget would render, and the check reports it."""
    assert artifacts.chart
    chart = tmp_path / artifacts.chart.name
    shutil.copytree(artifacts.chart, chart)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    total, limit = connection_budget(values)
    assert (total, limit) == (54, 97)  # 13 pods x (3 + 1) + 2 (migration) <= 100 - 3
    assert chart_connection_budget_problems(chart) == []
    budget = chart / "templates/connection-budget.yaml"
    include = '{{- include "app.checkConnectionBudget" . }}'
    budget.write_text(budget.read_text().replace(include, ""))
    problems = chart_connection_budget_problems(chart)
    assert any("render: must be refused" in p for p in problems), problems


@pytest.mark.parametrize(
    ("label", "one", "two", "arithmetic"),
    [
        # 13 pods x 1 or 2 processes x (3 + 1), + 2 (migration).
        ("default", 54, 106, "locks (13 pods x 2 processes + 0 job pods) x 0 = 0"),
        # + (13 pods x 1 or 2 processes + 1 CronJob) x 3 (PostgreSQL job locks).
        ("memcached", 96, 187, "locks (13 pods x 2 processes + 1 job pods) x 3 = 81"),
    ],
)
def test_connection_budget_counts_every_process(
    projects: Projects, label: str, one: int, two: int, arithmetic: str
) -> None:
    """Each server process has its own pool and job-lock connections: WEB_CONCURRENCY=2 doubles
    the app and lock terms (not the CronJobs' or the migration's), in the independent arithmetic
    and in the chart's own refusal."""
    chart = next(projects[label].glob("deploy/helm/*"))
    values = yaml.safe_load((chart / "values.yaml").read_text())
    doubled = copy.deepcopy(values)
    doubled["config"]["WEB_CONCURRENCY"] = "2"
    assert (connection_budget(values)[0], connection_budget(doubled)[0]) == (one, two)
    fixed = 2 + len(values.get("cronJobs") or {}) * values["database"].get(
        "lockConnectionsPerProcess", 0
    )
    assert two - fixed == 2 * (one - fixed)
    with pytest.raises(Exception, match="database connection budget") as refused:
        render_chart(
            chart, {"config": {"WEB_CONCURRENCY": "2"}, "resources": {"limits": {"cpu": "2"}}}
        )
    assert f"{two} connections > database.maxConnections" in str(refused.value)
    assert "x 2 processes x (DB_POOL_SIZE + DB_MAX_OVERFLOW = 4) = 104" in str(refused.value)
    assert arithmetic in str(refused.value)


def test_store_budget_fits_by_default_and_is_enforced(artifacts: Artifacts, tmp_path) -> None:
    """The store's default client limit holds the defaults; more replicas or connections per
    process than it holds are refused with the arithmetic; without the chart's check, values
    over the budget would render, and the check reports it."""
    assert artifacts.chart
    chart = tmp_path / artifacts.chart.name
    shutil.copytree(artifacts.chart, chart)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    # 13 pods x 1 process x (STORE_MAX_CONNECTIONS 20 + the jobs' lock and ledger pools 8).
    assert store_budget(values) == (364, 9968)
    assert chart_store_budget_problems(chart) == []
    with pytest.raises(Exception, match="store connection budget") as refused:
        render_chart(chart, {"config": {"STORE_MAX_CONNECTIONS": "1000"}})
    assert "13104 connections > store.maxClients - store.reservedClients = 9968" in str(
        refused.value
    )
    assert "x 1 process x (STORE_MAX_CONNECTIONS 1000 + jobs 8 = 1008) = 13104" in str(
        refused.value
    )
    budget = chart / "templates/store-budget.yaml"
    include = '{{- include "app.checkStoreBudget" . }}'
    budget.write_text(budget.read_text().replace(include, ""))
    problems = chart_store_budget_problems(chart)
    assert any("render: must be refused" in p for p in problems), problems


def test_process_budget_fits_by_default_and_is_enforced(artifacts: Artifacts, tmp_path) -> None:
    """One process fits the default limits and two fit a core each; without the chart's check,
    more processes than the limits hold would render, and both checks report it: the budget's
    own (with the arithmetic) and check_chart's refused value sets."""
    assert artifacts.chart
    chart = tmp_path / artifacts.chart.name
    shutil.copytree(artifacts.chart, chart)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert (values["config"]["WEB_CONCURRENCY"], values["memoryPerProcess"]) == ("1", "160Mi")
    assert process_budget(values) == []
    assert chart_process_budget_problems(chart) == []
    over = copy.deepcopy(values)
    over["config"]["WEB_CONCURRENCY"] = "4"
    over["resources"]["limits"] = {"cpu": "3500m", "memory": "0.5Gi"}
    assert process_budget(over) == [
        "resources.limits.cpu 3500m = 3500m < config.WEB_CONCURRENCY 4 processes x 1000m",
        "resources.limits.memory 0.5Gi (536870912 bytes) < (config.WEB_CONCURRENCY 4 processes"
        " + 1 supervisor) x memoryPerProcess 160Mi = 800Mi (838860800 bytes)",
    ]
    one = copy.deepcopy(values)
    one["resources"]["limits"] = {"cpu": "250m", "memory": "128Mi"}  # one process: no supervisor
    assert process_budget(one) == [
        "resources.limits.memory 128Mi (134217728 bytes) < config.WEB_CONCURRENCY 1 process"
        " x memoryPerProcess 160Mi = 160Mi (167772160 bytes)"
    ]
    budget = chart / "templates/process-budget.yaml"
    include = '{{- include "app.checkProcessBudget" . }}'
    assert include in budget.read_text()
    budget.write_text(budget.read_text().replace(include, ""))
    problems = chart_process_budget_problems(chart)
    assert any("processes-above-cpu" in p and "must be refused" in p for p in problems), problems
    assert any("processes-above-memory" in p and "must be refused" in p for p in problems)


def test_memcached_store_without_a_bound_or_with_eviction_is_reported() -> None:
    def store(*command: str) -> dict[str, Any]:
        return {"store": {"image": "memcached:1.6-alpine", "command": list(command)}}

    assert compose_store_problems(store("memcached", "-m", "256", "-M")) == []
    assert compose_store_problems(store("memcached", "-m", "256"))  # evicts when full
    assert compose_store_problems(store("memcached", "-M"))  # default 64 MB, unstated


def test_gitlab_pipeline_passes(projects: Projects) -> None:
    assert check_workflow(str(projects["gitlab"] / ".gitlab-ci.yml")) == []


def test_both_pipelines_check_the_image_the_same_way(
    artifacts: Artifacts, projects: Projects
) -> None:
    """GitHub's and GitLab's image jobs run one script: start, probe, SIGTERM, exit code 0
    (DEFECTS breaks the GitLab one)."""
    github = next(w for w in artifacts.workflows if w.name == "ci.yml")
    scripts = [
        image_smoke_script(yaml.safe_load(path.read_text()))
        for path in (github, projects["gitlab"] / ".gitlab-ci.yml")
    ]
    assert scripts[0] is not None and scripts[0] == scripts[1]


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


def test_charts_scanned_together_are_judged_apart(project: Path, tmp_path: Path) -> None:
    """checkov links the objects of one scan by selector labels: a chart without a
    NetworkPolicy, scanned beside one that has it, still fails CKV2_K8S_6 (all pods covered)."""
    covered, uncovered = tmp_path / "covered", tmp_path / "uncovered"
    shutil.copytree(project, covered, symlinks=True)
    shutil.copytree(project, uncovered, symlinks=True)
    values = next(uncovered.glob("deploy/helm/*/values.yaml"))
    text = values.read_text(encoding="utf-8")
    assert "networkPolicy:\n  enabled: true" in text
    values.write_text(
        text.replace("networkPolicy:\n  enabled: true", "networkPolicy:\n  enabled: false")
    )
    problems = run_deploy_checks([covered, uncovered]).problems
    assert not any("CKV2_K8S_6" in p for p in problems["covered"]), problems["covered"]
    assert any("CKV2_K8S_6" in p for p in problems["uncovered"]), problems["uncovered"]


def test_the_templates_own_workflow_keeps_the_same_rules() -> None:
    """actionlint, the workflow schema, SHA-pinned actions, least privilege, timeouts."""
    workflow = Path(__file__).resolve().parent.parent / ".github/workflows/ci.yml"
    assert check_workflow(str(workflow)) == []


# --- storage: every provider's chart and Compose file --------------------------------------------


def test_trees_of_the_same_name_are_refused(tmp_path: Path) -> None:
    """The report is keyed by tree name: two trees named alike would report as one."""
    trees = [tmp_path / "a" / "project", tmp_path / "b" / "project"]
    with pytest.raises(ValueError, match="distinct names"):
        run_deploy_checks(trees)


@pytest.fixture(scope="module")
def provider_and_scheduler_report(projects: Projects) -> DeployReport:
    """The whole deployment check of every storage provider's and scheduler's project, in one
    run (checkov takes seconds to start)."""
    trees = {**projects.some(STORAGE_PROVIDERS), **projects.some(SCHEDULERS)}
    return run_deploy_checks({tree.name: tree for tree in trees.values()}.values())


def test_every_storage_provider_passes_the_deployment_checks(
    projects: Projects, provider_and_scheduler_report: DeployReport
) -> None:
    storage_projects = projects.some(STORAGE_PROVIDERS)
    problems = provider_and_scheduler_report.problems
    assert {tree.name: problems[tree.name] for tree in storage_projects.values()} == {
        tree.name: [] for tree in storage_projects.values()
    }
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


def test_local_storage_renders_a_shared_claim_mounted_by_every_replica(projects: Projects) -> None:
    docs = _manifests_of(projects["local"])
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert mount["mountPath"] == "/srv/storage"
    existing = _manifests_of(projects["local"], {"sharedStorage": {"existingClaim": "nfs"}})
    assert not any(d["kind"] == "PersistentVolumeClaim" for d in existing)


def test_restricted_egress_keeps_https_to_object_storage(projects: Projects) -> None:
    restricted = {"networkPolicy": {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}}
    for provider in ("s3", "gcs", "azure"):
        docs = _manifests_of(projects[provider], restricted)
        policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
        ports = [p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])]
        assert {53, 443} <= set(ports), (provider, policy["spec"]["egress"])


def test_local_chart_refuses_unshared_production_even_without_the_schema(
    projects: Projects, tmp_path: Path
) -> None:
    """Two guards: the values schema, and the template's own `fail` (which also holds under
    `helm template --skip-schema-validation`). Without both, check_chart reports it."""
    tree = projects["local"]
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


# --- scheduled jobs: the CronJob and Celery workloads --------------------------------------------


def test_every_scheduler_passes_the_deployment_checks(
    projects: Projects, provider_and_scheduler_report: DeployReport
) -> None:
    job_projects = projects.some(SCHEDULERS)
    problems = provider_and_scheduler_report.problems
    assert {tree.name: problems[tree.name] for tree in job_projects.values()} == {
        tree.name: [] for tree in job_projects.values()
    }
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


# --- what the rendered files say: only the chosen database, storage, store and scheduler ---------


def test_rendered_files_name_only_what_the_answers_chose(projects: Projects) -> None:
    """No migration Job or database budget without a database, no "S3-compatible" in an Azure
    chart, no Redis URL with Memcached, no heading twice (the tier 1 run checks every
    combination the same way)."""
    for label in ("default", "memcached", *STORAGE_PROVIDERS):
        assert wording_problems(projects[label]) == [], label
        assert markdown_problems(projects[label]) == [], label
    for tree in projects.some(STORAGE_PROVIDERS).values():  # database none
        assert not list(tree.glob("deploy/helm/*/templates/migration-job.yaml"))
        values = yaml.safe_load(next(tree.glob("deploy/helm/*/values.yaml")).read_text())
        assert "migration" not in values


def test_headings_in_code_blocks_are_not_headings() -> None:
    text = "# A\n\n```bash\n# A comment\n# A\n```\n\n## B\n"
    assert duplicate_headings(text) == ()
    assert duplicate_headings(text + "\n## b\n") == ("b",)


# --- the dependency bot: Dependabot on GitHub, Renovate on GitLab -------------------------------


def test_each_provider_renders_its_dependency_bot(projects: Projects) -> None:
    """Dependabot for GitHub, Renovate for GitLab: schema-valid, covering uv, Docker, Compose,
    the pipeline, and the chart only where there is one."""
    bot_trees = projects.some(BOT_TREES)
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


# --- every defect the checks must report: (artifact, project, defect, edit, expected finding) ----


def web_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def _component_of(doc: dict[str, Any]) -> str:
    return doc["metadata"]["labels"].get("app.kubernetes.io/component", "")


Docs = list[dict[str, Any]]


def _set(path: list[Any], value: Any, kind: str = "Deployment") -> Callable[[Docs], None]:
    def edit(docs: Docs) -> None:
        target = next(d for d in docs if d["kind"] == kind)
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _edit_kind(
    kind: str, component: str | None, edit: Callable[[dict[str, Any]], Any]
) -> Callable[[Docs], None]:
    def apply(docs: Docs) -> None:
        edit(
            next(
                d
                for d in docs
                if d["kind"] == kind and (component is None or _component_of(d) == component)
            )
        )

    return apply


def _drop_shared_mount(docs: Docs) -> None:
    container = web_container(docs)
    container["volumeMounts"] = [
        m for m in container["volumeMounts"] if m["name"] != "shared-files"
    ]


class FileEdit(NamedTuple):
    """An edit of one rendered file (a glob below the tree): new text, or None to delete it."""

    rel: str
    change: Callable[[str], str | None]


def _text(rel: str, change: Callable[[str], str | None]) -> FileEdit:
    return FileEdit(rel, change)


def _replace(rel: str, old: str, new: str, count: int = -1) -> FileEdit:
    return FileEdit(rel, lambda text: text.replace(old, new, count))


def _append(rel: str, tail: str) -> FileEdit:
    return FileEdit(rel, lambda text: text + tail)


def _delete(rel: str) -> FileEdit:
    return FileEdit(rel, lambda text: None)


def _compose(edit: Callable[[dict[str, Any]], Any]) -> FileEdit:
    def change(text: str) -> str:
        document = yaml.safe_load(text)
        before = copy.deepcopy(document)
        edit(document)
        assert document != before, "the edit no longer applies"
        return yaml.safe_dump(document, sort_keys=False)

    return FileEdit("compose.yaml", change)


def _compose_problems(tree: Path, _: Path) -> list[str]:
    found = Artifacts.find(tree)
    return check_compose(str(found.compose), str(found.haproxy) if found.haproxy else None)


# The checker of each artifact, on a tree and the file the defect edited.
CHECKERS: dict[str, Callable[[Path, Path], list[str]]] = {
    "compose": _compose_problems,
    "haproxy": _compose_problems,
    "pipeline": lambda tree, path: check_workflow(str(path)),
    "wording": lambda tree, _: wording_problems(tree) + markdown_problems(tree),
    "dependency bot": lambda tree, _: dependency_bot_problems(
        tree, next(tree.glob("deploy/helm/*"), None)
    ),
    # The whole run, checkov included: too slow to also run on the unedited tree.
    # The deployment defects are findings of the per-tree checks, not of checkov's policies.
    "deployment": lambda tree, _: run_deploy_checks([tree], checkov=False).problems[tree.name],
}


class Defect(NamedTuple):
    artifact: str  # "chart manifests" (an edit of the rendered manifests) or a key of CHECKERS
    project: str  # a key of PROJECTS
    name: str
    edit: Callable[[Docs], Any] | FileEdit
    expected: str  # a text one of the checker's findings must contain

    def __str__(self) -> str:
        return f"{self.artifact}:{self.project}:{self.name}"


POD = ["spec", "template", "spec"]
CONTAINER = [*POD, "containers", 0]
CI_YML = ".github/workflows/ci.yml"
HAPROXY_CFG = "deploy/compose/haproxy.cfg"
M, C = "chart manifests", "compose"

DEFECTS: list[Defect] = [
    # --- the chart's manifests (manifest_invariants) ---
    Defect(M, "default", "grace-too-short",
           _set([*POD, "terminationGracePeriodSeconds"], 20), "> terminationGrace"),
    Defect(M, "default", "no-prestop",
           _set([*CONTAINER, "lifecycle"], {}), "preStop is not `sleep N`"),
    Defect(M, "default", "liveness-on-readyz",
           _set([*CONTAINER, "livenessProbe", "httpGet", "path"], "/readyz"),
           "livenessProbe does not GET /livez"),
    Defect(M, "default", "probe-wrong-port",
           _set([*CONTAINER, "readinessProbe", "httpGet", "port"], "web"),
           "readinessProbe port 'web' is not a container port"),
    Defect(M, "default", "pdb-blocks-eviction",
           _set(["spec", "maxUnavailable"], 0, kind="PodDisruptionBudget"),
           "PDB allows no eviction at 3 replicas"),
    Defect(M, "default", "pdb-min-all",
           _edit_kind("PodDisruptionBudget", None,
                      lambda d: d["spec"].update(minAvailable="100%")),
           "PDB allows no eviction"),
    Defect(M, "default", "writable-root",
           _set([*CONTAINER, "securityContext", "readOnlyRootFilesystem"], False),
           "readOnlyRootFilesystem not set"),
    Defect(M, "default", "capabilities-kept",
           _set([*CONTAINER, "securityContext", "capabilities"], {}),
           "capabilities.drop ALL not set"),
    Defect(M, "default", "token-mounted",
           _set([*POD, "automountServiceAccountToken"], True), "service account token mounted"),
    Defect(M, "default", "migrates-at-start",
           _set([*CONTAINER, "args"], ["migrate"]), "runs migrate at start"),
    Defect(M, "default", "job-not-hook",
           _edit_kind("Job", None, lambda d: d["metadata"]["annotations"].pop("helm.sh/hook")),
           "is not a pre-install,pre-upgrade hook"),
    Defect(M, "default", "tag-not-pulled",
           _set([*CONTAINER, "imagePullPolicy"], "IfNotPresent"),
           "image by tag pulled IfNotPresent"),
    Defect(M, "default", "service-selects-nothing",
           _set(["spec", "selector", "app.kubernetes.io/component"], "other", kind="Service"),
           "Service selector does not match"),
    Defect(M, "local", "claim-not-mounted", _drop_shared_mount, "is not a mounted volume claim"),
    Defect(M, "local", "claim-read-write-once",
           _set(["spec", "accessModes"], ["ReadWriteOnce"], kind="PersistentVolumeClaim"),
           "is not ReadWriteMany"),
    Defect(M, "local", "undeclared-in-production",
           _edit_kind("ConfigMap", None, lambda d: d["data"].update(STORAGE_LOCAL_SHARED="false")),
           "not declared shared"),
    Defect(M, "s3", "egress-without-https",
           _edit_kind("NetworkPolicy", None, lambda d: d["spec"].update(
               {"policyTypes": ["Ingress", "Egress"], "egress": [{"ports": [{"port": 53}]}]})),
           "restricts egress without HTTPS"),
    Defect(M, "cronjob", "overlapping-runs",
           _edit_kind("CronJob", None, lambda d: d["spec"].update(concurrencyPolicy="Allow")),
           "concurrencyPolicy is not Forbid"),
    Defect(M, "cronjob", "no-starting-deadline",
           _edit_kind("CronJob", None, lambda d: d["spec"].pop("startingDeadlineSeconds")),
           "no startingDeadlineSeconds"),
    Defect(M, "cronjob", "unbounded-history",
           _edit_kind("CronJob", None, lambda d: d["spec"].pop("failedJobsHistoryLimit")),
           "no failedJobsHistoryLimit"),
    Defect(M, "cronjob", "local-time",
           _edit_kind("CronJob", None, lambda d: d["spec"].pop("timeZone")),
           "schedule not in UTC"),
    Defect(M, "cronjob", "serves-instead-of-job",
           _edit_kind("CronJob", None, lambda d: d["spec"]["jobTemplate"]["spec"]["template"][
               "spec"]["containers"][0].update(args=["serve"])),
           "does not run `run-job NAME`"),
    Defect(M, "celery", "three-beats",
           _edit_kind("Deployment", "beat", lambda d: d["spec"].update(replicas=3)),
           "one sends, a second waits"),
    Defect(M, "celery", "beat-rolling-update",
           _edit_kind("Deployment", "beat", lambda d: d["spec"].update(strategy={})),
           "does not roll out with Recreate"),
    Defect(M, "celery", "worker-liveness-on-http",
           _edit_kind("Deployment", "worker", lambda d: web_container([d]).update(
               livenessProbe={"httpGet": {"path": "/livez", "port": 8000}})),
           "liveness probe is not its --ping"),
    Defect(M, "celery", "no-beat",
           lambda docs: docs.remove(next(
               d for d in docs if d["kind"] == "Deployment" and _component_of(d) == "beat")),
           "a Celery beat needs a worker"),
    Defect(M, "celery", "worker-pdb-blocks-drain",
           _edit_kind("PodDisruptionBudget", "worker",
                      lambda d: d["spec"].update(maxUnavailable=0)),
           "PDB allows no eviction at 2 replicas"),
    # --- Compose (check_compose) ---
    Defect(C, "default", "no-replicas",
           _compose(lambda c: c["services"]["app"].pop("deploy")), "app has no deploy.replicas"),
    Defect(C, "default", "published-app",
           _compose(lambda c: c["services"]["app"].update(ports=["8000:8000"])),
           "app publishes ports"),
    Defect(C, "default", "no-healthcheck",
           _compose(lambda c: c["services"]["store"].pop("healthcheck")),
           "service store has no healthcheck"),
    Defect(C, "default", "no-migrate-wait",
           _compose(lambda c: c["services"]["app"]["depends_on"].pop("migrate")),
           "app does not wait for migrate"),
    Defect(C, "default", "short-stop",
           _compose(lambda c: c["services"]["app"].update(stop_grace_period="10s")),
           "stop_grace_period is shorter"),
    Defect(C, "default", "schema",
           _compose(lambda c: c["services"]["lb"].update(ports=8080)), "compose-spec schema"),
    Defect(C, "default", "store-unbounded",
           _compose(lambda c: c["services"]["store"].pop("command")),
           "store: no --maxmemory bound"),
    Defect(C, "default", "store-evicts",
           _compose(lambda c: c["services"]["store"].update(command=[
               "redis-server", "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"])),
           "--maxmemory-policy is not noeviction"),
    Defect(C, "default", "slots-not-replicas",
           _compose(lambda c: c["services"]["lb"]["environment"].update(APP_REPLICAS="10")),
           "the balancer's slots (APP_REPLICAS=10) are not app's replicas"),
    Defect(C, "local", "no-shared-volume",
           _compose(lambda c: c["services"]["app"].pop("volumes")),
           "is not a named volume mounted by app"),
    Defect(C, "local", "not-declared",
           _compose(lambda c: c["services"]["app"]["environment"].update(
               STORAGE_LOCAL_SHARED="false")),
           "not declared shared"),
    Defect(C, "s3", "no-bucket-wait",
           _compose(lambda c: c["services"]["app"]["depends_on"].pop("storage-init")),
           "does not wait for a healthy storage service minio"),
    Defect(C, "s3", "unknown-endpoint",
           _compose(lambda c: c["services"]["app"]["environment"].update(
               STORAGE_ENDPOINT_URL="http://s3mock:9090")),
           "names s3mock, which is not a service"),
    Defect(C, "azure", "emulator-without-healthcheck",
           _compose(lambda c: c["services"]["azurite"].pop("healthcheck")),
           "service azurite has no healthcheck"),
    Defect(C, "celery-compose", "two-beats",
           _compose(lambda c: c["services"]["beat"]["deploy"].update(replicas=2)),
           "beat runs more than one Celery beat"),
    Defect(C, "celery-compose", "worker-checked-over-http",
           _compose(lambda c: c["services"]["worker"].update(
               healthcheck={"test": ["CMD", "curl", "-f", "http://127.0.0.1:8000/livez"]})),
           "health check is not its --ping"),
    Defect(C, "celery-compose", "no-worker",
           _compose(lambda c: c["services"].pop("worker")), "a Celery beat needs a worker"),
    # --- the balancer (check_compose, haproxy.cfg) ---
    Defect("haproxy", "default", "fixed-slots",
           _text(HAPROXY_CFG, lambda t: re.sub(
               r'server-template app "\$\{APP_REPLICAS\}"', "server-template app 10", t)),
           "haproxy.cfg has 10 server slots"),
    Defect("haproxy", "default", "post-retried",
           _text(HAPROXY_CFG,
                 lambda t: re.sub(r"(?m)^\s*http-request disable-l7-retry.*\n", "", t)),
           "a POST could be applied twice"),
    Defect("haproxy", "default", "fixed-nameserver",
           _replace(HAPROXY_CFG, "    parse-resolv-conf\n", "    nameserver dns 127.0.0.11:53\n"),
           "does not read the container's resolver"),
    Defect("haproxy", "default", "invalid-config",
           _replace(HAPROXY_CFG, "balance roundrobin", "balance nonsense"), "haproxy -c failed"),
    # --- the CI pipelines (check_workflow) ---
    Defect("pipeline", "default", "tag-pinned",
           _replace(CI_YML, "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2",
                    "actions/checkout@v4"),
           "not pinned by full commit SHA"),
    Defect("pipeline", "default", "write-all",
           _replace(CI_YML, "permissions:\n  contents: read", "permissions: write-all"),
           "not least privilege"),
    Defect("pipeline", "default", "no-timeout",
           _replace(CI_YML, "    timeout-minutes: 10\n", "", 1), "has no timeout-minutes"),
    Defect("pipeline", "default", "schema",
           _replace(CI_YML, "runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1), "schema"),
    Defect("pipeline", "default", "actionlint",
           _replace(CI_YML, "run: uv run mypy", "run: uv run mypy ${{ github.evnt.name }}"),
           "actionlint"),
    Defect("pipeline", "gitlab", "schema",
           _replace(".gitlab-ci.yml", "stage: check", "stage: check\n  when: sometimes", 1),
           "gitlab-ci schema"),
    Defect("pipeline", "gitlab", "image-killed",
           _replace(".gitlab-ci.yml", "docker stop --time 30 smoke", "docker kill smoke"),
           "the image job does not stop it with SIGTERM"),
    Defect("pipeline", "gitlab", "image-exit-ignored",
           _replace(".gitlab-ci.yml", 'test "$status" = 0', "true"),
           "the image job does not require exit code 0"),
    # --- what the deployment files say (wording_problems, markdown_problems) ---
    Defect("wording", "s3", "migration-without-database",
           _append("deploy/helm/*/values.yaml", "migration:\n  enabled: false\n"),
           "names a database"),
    Defect("wording", "azure", "s3-wording-in-azure",
           _append("deploy/helm/*/README.md", "\nAn S3-compatible endpoint.\n"),
           "names another storage provider"),
    Defect("wording", "local", "bucket-in-local",
           _append("deploy/helm/*/templates/NOTES.txt", "\nFiles go to the bucket.\n"),
           "names object storage"),
    Defect("wording", "memcached", "redis-with-memcached",
           _append("compose.yaml", "# STORE_URL=redis://store:6379/0\n"), "names another store"),
    Defect("wording", "gcs", "celery-with-inprocess",
           _append("deploy/helm/*/values.yaml", "# Celery runs the jobs.\n"),
           "names another scheduler"),
    Defect("wording", "s3", "heading-twice",
           _append("deploy/helm/*/README.md", "\n## Availability\n\nAgain.\n"),
           "heading 'Availability' twice"),
    # --- the dependency bot (dependency_bot_problems) ---
    Defect("dependency bot", "github-kubernetes", "no-dependabot",
           _delete(".github/dependabot.yml"), "no .github/dependabot"),
    Defect("dependency bot", "github-kubernetes", "dependabot-without-uv",
           _replace(".github/dependabot.yml", "package-ecosystem: uv", "package-ecosystem: pip"),
           "does not update [('uv', '/')]"),
    Defect("dependency bot", "github-compose", "dependabot-schema",
           _replace(".github/dependabot.yml", "interval: weekly", "interval: fortnightly", 1),
           "dependabot schema"),
    Defect("dependency bot", "gitlab-compose", "no-renovate",
           _delete(".gitlab/renovate.json"), "no .gitlab/renovate.json"),
    Defect("dependency bot", "gitlab-kubernetes", "renovate-without-helm",
           _replace(".gitlab/renovate.json", ', "helmv3", "helm-values"', ""),
           "does not enable the managers ['helm-values', 'helmv3']"),
    Defect("dependency bot", "gitlab-kubernetes", "renovate-schema",
           _replace(".gitlab/renovate.json", '"enabled": true', '"enabled": "yes"'),
           "renovate schema"),
    # --- cross-file checks of the whole run (run_deploy_checks) ---
    Defect("deployment", "default", "setting-not-in-env-example",
           _replace("deploy/helm/*/values.yaml", "  LOG_LEVEL: INFO", "  LOGLEVEL: INFO"),
           "chart config sets ['LOGLEVEL']"),
    Defect("deployment", "azure", "pipeline-without-azurite",
           _replace(CI_YML, "npm install -g azurite@3.35.0", "npm --version"),
           "does not install azurite@3.35.0"),
]  # fmt: skip


@pytest.fixture(scope="module")
def unedited() -> dict[tuple[str, str, str], Any]:
    """Per (artifact, project, file): what the checker reports on the unedited project (for the
    chart manifests, the manifests themselves); filled in by the first defect that needs it."""
    return {}


def _reported(expected: str, problems: list[str]) -> bool:
    return any(expected in p for p in problems)


@pytest.mark.parametrize("defect", DEFECTS, ids=str)
def test_each_defect_is_reported(
    defect: Defect, projects: Projects, unedited: dict, tmp_path: Path
) -> None:
    """The unedited artifact does not report the finding; the edited one does."""
    source = projects[defect.project]
    if isinstance(defect.edit, FileEdit):
        check = CHECKERS[defect.artifact]
        key = (defect.artifact, defect.project, defect.edit.rel)
        if defect.artifact != "deployment" and key not in unedited:
            unedited[key] = check(source, next(source.glob(defect.edit.rel)))
        assert not _reported(defect.expected, unedited.get(key, []))
        tree = tmp_path / "tree"
        shutil.copytree(source, tree)
        path = next(tree.glob(defect.edit.rel))
        text = path.read_text(encoding="utf-8")
        edited = defect.edit.change(text)
        assert edited != text, f"{defect}: the edit no longer applies"
        if edited is None:
            path.unlink()
        else:
            path.write_text(edited, encoding="utf-8")
        problems = check(tree, path)
    else:
        key = (defect.artifact, defect.project, "")
        if key not in unedited:
            unedited[key] = _manifests_of(source)
        docs = unedited[key]
        routes = route_paths(Artifacts.find(source).probes)
        assert manifest_invariants(docs, routes) == []
        edited_docs = copy.deepcopy(docs)
        defect.edit(edited_docs)
        assert edited_docs != docs, f"{defect}: the edit no longer applies"
        problems = manifest_invariants(edited_docs, routes)
    assert _reported(defect.expected, problems), problems
