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


# --- reading files once -------------------------------------------------------------------------
# Tier 1's trees are hard links to one copy of each distinct content, so a file's identity
# (device, inode, size, modification time) names its content: each distinct file is read,
# parsed and checked once however many trees hold it. Any other tree just misses the cache.


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@cache
def _text(identity: tuple[int, int, int, int], path: str) -> str:
    return Path(path).read_text(encoding="utf-8", errors="replace")


def load_yaml(text: str) -> Any:
    """yaml.safe_load through libyaml (ten times faster than the pure-Python parser)."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_yaml_all(text: str) -> list[Any]:
    """yaml.safe_load_all through libyaml."""
    import yaml

    return list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


@cache
def _yaml(identity: tuple[int, int, int, int], path: str) -> Any:
    return load_yaml(_text(identity, path))


@cache
def _digest(identity: tuple[int, int, int, int], path: str) -> bytes:
    return hashlib.sha256(Path(path).read_bytes()).digest()


def read_text(path: Path) -> str:
    """The file's text, read once per distinct file."""
    return _text(_identity(path), str(path))


def read_yaml(path: Path) -> Any:
    """The file parsed as YAML, once per distinct file; callers must not modify it."""
    return _yaml(_identity(path), str(path))


def sha_of(paths: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(_digest(_identity(path), str(path)) + b"\0")
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
        probes = sorted(tree.glob("src/*/health.py"))
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
    # The paths the core's ProbeMiddleware answers: `PROBE_PATHS = frozenset({"/livez", ...})`.
    declared = re.search(r"(?m)^PROBE_PATHS = frozenset\(\{([^}]*)\}\)", read_text(probes_py))
    return set(re.findall(r"\"(/[^\"]*)\"", declared.group(1))) if declared else set()


def env_example_names(tree: Path) -> set[str]:
    path = tree / ".env.example"
    if not path.is_file():
        return set()
    return set(re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", read_text(path)))


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
