"""The whole deployment check of many trees: each expensive check once per distinct artifact."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import POOL_CONTEXT

from deploy_checks.chart import (
    REFUSED_VALUE_SETS,
    STORAGE_REFUSED_VALUE_SETS,
    STORAGE_VALUE_SETS,
    VALUE_SETS,
    check_chart,
)
from deploy_checks.checkov import run_checkov
from deploy_checks.common import (
    NEWEST_KUBERNETES,
    OLDEST_KUBERNETES,
    Artifacts,
    _files,
    env_example_names,
    read_text,
    read_yaml,
    route_paths,
    sha_of,
)
from deploy_checks.compose import check_compose
from deploy_checks.pipelines import PIPELINE_TEST_SERVERS, check_workflow, dependency_bot_problems
from deploy_checks.wording import markdown_problems, wording_problems


@dataclass
class DeployReport:
    problems: dict[str, list[str]]  # tree name -> problems
    stats: dict[str, Any] = field(default_factory=dict)


def _chart_job(args: tuple[str, list[str], str]) -> dict[str, Any]:
    return check_chart(*args)


def _compose_job(args: tuple[str, str | None]) -> list[str]:
    return check_compose(*args)


# Below this many trees, their own checks run in this process (spawning costs more).
PARALLEL_TREES = 256


def _tree_facts(tree: Path) -> tuple[dict[str, Any], list[str], Any, Any, list[tuple[str, str]]]:
    """One tree's artifact keys, its own problems, and the chart, Compose file and pipelines it
    holds (each under its key), for run_deploy_checks."""
    a = Artifacts.find(tree)
    own: list[str] = []
    k: dict[str, Any] = {"workflows": []}
    chart = compose_entry = None
    names = env_example_names(a.tree)
    routes = sorted(route_paths(a.probes))
    if a.chart:
        # The chart's files and the probe paths the service serves (not the probe module
        # itself: the frameworks write the same paths differently).
        chart_sha = sha_of(_files(a.chart), a.tree)
        k["chart"] = hashlib.sha256(f"{chart_sha} {routes}".encode()).hexdigest()
        # A release name per distinct chart: checkov's scan links objects across charts
        # that share selector labels (a policy of one chart would cover another's pods).
        chart = (str(a.chart), routes, f"r{k['chart'][:16]}")
        values = read_yaml(a.chart / "values.yaml")
        unknown = sorted(set(values.get("config", {})) - names)
        if unknown:
            own.append(f"chart config sets {unknown}, which .env.example does not list")
    if a.compose:
        k["compose"] = sha_of([a.compose, *([a.haproxy] if a.haproxy else [])], a.tree)
        compose_entry = (str(a.compose), str(a.haproxy) if a.haproxy else None)
        compose = read_yaml(a.compose)
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
            needle in read_text(w) for w in a.workflows
        ):
            own.append(f"the CI pipeline does not install {needle} for tests/support/{support}")
    tree_workflows = []
    for workflow in a.workflows:
        key = sha_of([workflow], a.tree)
        tree_workflows.append((key, str(workflow)))
        k["workflows"].append(key)
    dockerfile = a.tree / "Dockerfile"
    if dockerfile.is_file():
        k["dockerfile"] = sha_of([dockerfile], a.tree)
    return k, own, chart, compose_entry, tree_workflows


def run_deploy_checks(
    trees: Iterable[Path], workers: int | None = None, checkov: bool = True
) -> DeployReport:
    """The problems of each tree, by its directory name (which must be unique). checkov=False
    leaves out checkov's policies (for checks of the other checkers: checkov takes seconds to
    start)."""
    stage_start = time.perf_counter()
    walls: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal stage_start
        now = time.perf_counter()
        walls[stage] = round(now - stage_start, 2)
        stage_start = now

    found = [Artifacts.find(tree) for tree in trees]
    names = [a.tree.name for a in found]
    if len(set(names)) != len(names):
        # The report is keyed by name: a second tree of the same name would hide the first.
        raise ValueError(f"trees must have distinct names, not {sorted(names)}")
    charts: dict[str, tuple[str, list[str], str]] = {}
    composes: dict[str, tuple[str, str | None]] = {}
    workflows: dict[str, str] = {}
    keys: dict[str, dict[str, Any]] = {}
    problems: dict[str, list[str]] = {}
    workers = min(workers or os.cpu_count() or 1, max(1, len(found)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=POOL_CONTEXT) as pool:
        # Each tree's own checks, over both cores when there are many trees (tier 1: thousands,
        # each read through the per-process caches of distinct files); in order, so the first
        # tree holding an artifact names it, as in one process.
        facts = (
            pool.map(_tree_facts, [a.tree for a in found], chunksize=64)
            if len(found) >= PARALLEL_TREES
            else map(_tree_facts, [a.tree for a in found])
        )
        for a, (k, own, chart, compose, tree_workflows) in zip(found, facts, strict=True):
            if chart is not None:
                charts.setdefault(k["chart"], chart)
            if compose is not None:
                composes.setdefault(k["compose"], compose)
            for key, workflow in tree_workflows:
                workflows.setdefault(key, workflow)
            keys[a.tree.name] = k
            problems[a.tree.name] = own
        lap("trees_s")
        chart_results = dict(zip(charts, pool.map(_chart_job, charts.values()), strict=True))
        lap("charts_s")
        compose_results = dict(
            zip(composes, pool.map(_compose_job, composes.values()), strict=True)
        )
        lap("compose_s")
        workflow_results = dict(
            zip(workflows, pool.map(check_workflow, workflows.values()), strict=True)
        )
        lap("pipelines_s")

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
    checkov_failed, checkov_totals = run_checkov(staged) if staged and checkov else ({}, {})
    lap("checkov_s")

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
        "stage_walls": walls,
    }
    return DeployReport(problems, stats)
