"""What a rendered tree holds, content hashes, and the vendored JSON schemas the checkers share."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent.parent
# The Kubernetes versions the chart claims (Chart.yaml kubeVersion, docs): both ends are checked.
OLDEST_KUBERNETES = "1.28.0"
NEWEST_KUBERNETES = "1.37.0"
KUBERNETES_VERSIONS = (OLDEST_KUBERNETES, NEWEST_KUBERNETES)
# Seconds that must remain between the service's own shutdown and the kubelet's SIGKILL.
MIN_SHUTDOWN_MARGIN_SECONDS = 2


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
