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

The checkers live in one module per artifact (chart, compose, pipelines, checkov, wording, settings,
with what they share in common); run_deploy_checks (run.py) puts them together. The names other
modules import are re-exported here, so `from deploy_checks import run_deploy_checks` keeps working.
"""

from __future__ import annotations

from deploy_checks.chart import (
    REFUSED_VALUE_SETS,
    STORAGE_REFUSED_VALUE_SETS,
    STORAGE_VALUE_SETS,
    VALUE_SETS,
    chart_connection_budget_problems,
    chart_store_budget_problems,
    check_chart,
    connection_budget,
    internal_port_invariants,
    manifest_invariants,
    pod_spec,
    render_chart,
    store_budget,
    validate_manifest,
)
from deploy_checks.checkov import run_checkov
from deploy_checks.common import (
    KUBERNETES_VERSIONS,
    NEWEST_KUBERNETES,
    OLDEST_KUBERNETES,
    Artifacts,
    route_paths,
)
from deploy_checks.compose import check_compose, compose_store_problems
from deploy_checks.pipelines import check_workflow, dependency_bot_problems, image_smoke_script
from deploy_checks.run import DeployReport, run_deploy_checks
from deploy_checks.settings import SETTINGS_PROBE, deployment_environments
from deploy_checks.wording import duplicate_headings, markdown_problems, wording_problems

__all__ = [
    "KUBERNETES_VERSIONS", "NEWEST_KUBERNETES", "OLDEST_KUBERNETES", "REFUSED_VALUE_SETS",
    "SETTINGS_PROBE", "STORAGE_REFUSED_VALUE_SETS", "STORAGE_VALUE_SETS", "VALUE_SETS",
    "Artifacts", "DeployReport", "chart_connection_budget_problems", "chart_store_budget_problems",
    "check_chart", "check_compose", "check_workflow", "compose_store_problems", "connection_budget",
    "dependency_bot_problems", "deployment_environments", "duplicate_headings",
    "image_smoke_script", "internal_port_invariants", "manifest_invariants", "markdown_problems",
    "pod_spec", "render_chart",
    "route_paths", "run_checkov", "run_deploy_checks", "store_budget", "validate_manifest",
    "wording_problems",
]  # fmt: skip
