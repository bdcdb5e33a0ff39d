"""The CI pipeline (GitHub or GitLab) and the dependency bot of the chosen provider."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from deploy_checks.common import load_yaml, read_text, read_yaml, schema_problems

# Test servers that are not Python packages, by the support module that starts them, and what
# the rendered pipeline must install for it.
PIPELINE_TEST_SERVERS = {
    "azure_storage_server.py": "azurite@3.35.0",
    "redis_server.py": "redis-server",
    "memcached_server.py": "memcached",
    # The database and PostgreSQL lock tests: a service container named by TEST_DATABASE_URL.
    "postgres_server.py": "TEST_DATABASE_URL",
}


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
    document = load_yaml(text)
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
@cache
def _bot_schema_problems(text: str, schema_name: str) -> tuple[str, ...]:
    document = json.loads(text) if schema_name == "renovate" else load_yaml(text)
    return tuple(schema_problems(document, schema_name))


def dependency_bot_problems(tree: Path, chart: Path | None) -> list[str]:
    """GitHub: .github/dependabot.yml; GitLab: .gitlab/renovate.json. Valid against its schema and
    covering every kind of pinned version the project has."""
    problems: list[str] = []
    if (tree / ".github/workflows").is_dir():
        path = tree / ".github/dependabot.yml"
        if not path.is_file():
            return ["no .github/dependabot.yml: nothing updates the pinned versions"]
        text = read_text(path)
        problems += [f"dependabot.yml: {p}" for p in _bot_schema_problems(text, "dependabot")]
        updates = {
            (u.get("package-ecosystem"), u.get("directory"))
            for u in read_yaml(path).get("updates", [])
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
        text = read_text(path)
        problems += [f"renovate.json: {p}" for p in _bot_schema_problems(text, "renovate")]
        managers = set(json.loads(text).get("enabledManagers", []))
        wanted = RENOVATE_MANAGERS | ({"helmv3", "helm-values"} if chart else set())
        if missing := sorted(wanted - managers):
            problems.append(f"renovate.json does not enable the managers {missing}")
    return problems
