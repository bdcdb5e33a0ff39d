"""Static checks of rendered projects (tier 1).

Per-file checks are keyed by (kind, content hash, python version), so a file rendered
byte-identical by many combinations is checked once. Ruff runs once over all rendered trees
(each tree is found by its own pyproject.toml) and its findings are mapped back to trees.
Dockerfiles and .dockerignore files also get the container checks of container_checks.py
(hadolint, and the container contract parsed from the Dockerfile).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from artifacts import (
    materialise,
    plain_renders,
    render_artifacts,
    tree_differences,
    write_blobs,
)
from container_checks import dockerfile_problems, dockerignore_problems, hadolint_problems
from deploy_checks import run_deploy_checks
from helpers import POOL_CONTEXT

ANSWERS_FILE = ".copier-answers.yml"
# GitHub Actions expressions and shell ${#var} are not Jinja.
_NOT_JINJA = re.compile(r"\$\{\{.*?\}\}|\$\{#", re.DOTALL)
_JINJA_MARKERS = ("{{", "{%", "{#")
_MAX_REPORTED = 5


def classify(relpath: str, files: set[str], data: bytes) -> str:
    """Kind of a rendered file, which decides the checks it gets."""
    path = PurePosixPath(relpath)
    if b"\0" in data:
        return "binary"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    if path.suffix == ".tpl" or _in_helm_templates(path, files):
        return "helm-template"  # Go templates: they legitimately contain {{ }}
    if path.name == ".pre-commit-config.yaml":
        return "pre-commit"
    if path.name == "Dockerfile" or path.name.startswith("Dockerfile."):
        return "dockerfile"
    if path.name == ".dockerignore":
        return "dockerignore"
    return {
        ".py": "py",
        ".pyi": "py",
        ".toml": "toml",
        ".yaml": "yaml",
        ".yml": "yaml",
        ".json": "json",
    }.get(path.suffix, "text")


def _in_helm_templates(path: PurePosixPath, files: set[str]) -> bool:
    for parent in path.parents:
        if parent.name == "templates" and str(parent.parent / "Chart.yaml") in files:
            return True
    return False


def manifest(root: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(relpath, sha256, kind) of every file under root, and the relative directories."""
    paths = sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())
    relpaths = {p.relative_to(root).as_posix() for p in paths}
    files = []
    for p in paths:
        data = os.readlink(p).encode() if p.is_symlink() else p.read_bytes()
        rel = p.relative_to(root).as_posix()
        files.append((rel, hashlib.sha256(data).hexdigest(), classify(rel, relpaths, data)))
    dirs = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())
    return files, dirs


def tree_problems(files: Iterable[str], dirs: Iterable[str]) -> list[str]:
    """Checks on a rendered tree as a whole (not on file contents)."""
    files = list(files)
    problems = [f"{p}: name ends with .jinja" for p in [*files, *dirs] if p.endswith(".jinja")]
    problems += [f"{p}: Jinja left in a path" for p in files if "{{" in p or "{%" in p]
    if ANSWERS_FILE not in files:
        problems.append(f"{ANSWERS_FILE} is missing")
    return problems


def _local_imports(source: bytes) -> tuple[tuple[int, str], ...]:
    """(level, dotted module) of every import in a Python file: level 0 for absolute ones."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()  # reported by the per-file checks
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
        elif isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
    return tuple(found)


def import_problems(
    files: Mapping[str, tuple[str, int]],
    blobs: Mapping[str, bytes],
    cache: dict[str, tuple[tuple[int, str], ...]],
) -> list[str]:
    """Imports of the project's own modules that name a module the tree does not hold.

    A file that one answer's `_exclude` rule leaves out while a file of every combination
    imports it passes every per-file check and ruff, and fails only when the module is
    imported (a rendered test once imported `tests/support/tcp_gate.py`, which projects with
    local storage did not get). Relative imports resolve from the file's package; absolute ones
    only when their first part is a package of the tree (`src/<package>` or a top-level one).
    """
    modules = {
        rel.removesuffix("/__init__.py").removesuffix(".py") for rel in files if rel.endswith(".py")
    }
    roots = {PurePosixPath(module).parts[0]: "" for module in modules if "/" not in module} | {
        PurePosixPath(module).parts[1]: "src/"
        for module in modules
        if module.startswith("src/") and module.count("/") == 1
    }
    problems = []
    for rel, (sha, _) in files.items():
        if not rel.endswith(".py"):
            continue
        if sha not in cache:
            cache[sha] = _local_imports(blobs[sha])
        package = PurePosixPath(rel).parent
        for level, module in cache[sha]:
            if level:
                base = package
                for _ in range(level - 1):
                    base = base.parent
                target = "/".join(p for p in (str(base), *module.split(".")) if p and p != ".")
            elif module.split(".")[0] in roots:
                target = roots[module.split(".")[0]] + module.replace(".", "/")
            else:
                continue  # a library
            if target not in modules and not any(m.startswith(target + "/") for m in modules):
                dots = "." * level
                problems.append(f"{rel}: imports {dots}{module}, which this tree does not hold")
    return problems


# --- per-file checks -----------------------------------------------------------------------


def check_file(kind: str, path: str, python_version: str) -> list[str]:
    """Problems in one file (a representative of all files with the same content)."""
    data = Path(path).read_bytes()
    if kind == "binary":
        return []
    text = data.decode("utf-8")
    problems = _text_problems(text, jinja_allowed=kind == "helm-template")
    try:
        if kind == "py":
            compile(text, path, "exec", dont_inherit=True)
            major, minor = (int(x) for x in python_version.split(".")[:2])
            # compile() accepts the running interpreter's syntax; also parse for the target.
            ast.parse(text, path, feature_version=(major, minor))
        elif kind == "toml":
            tomllib.loads(text)
        elif kind in {"yaml", "pre-commit"}:
            list(yaml.safe_load_all(text))
        elif kind == "json":
            json.loads(text)
    except Exception as error:  # any parse failure is the finding
        problems.append(f"does not parse as {kind}: {type(error).__name__}: {error}")
    if kind == "pre-commit" and not problems:
        problems += _pre_commit_problems(path)
    elif kind == "dockerfile":
        # The base image default must match the combination's Python version.
        problems += dockerfile_problems(text, python_version) + hadolint_problems(path)
    elif kind == "dockerignore":
        problems += dockerignore_problems(text)
    return problems


def _text_problems(text: str, *, jinja_allowed: bool) -> list[str]:
    problems = []
    if text and not text.endswith("\n"):
        problems.append("does not end with a newline")
    elif text.endswith("\n\n") or text == "\n":
        problems.append("ends with more than one newline (blank lines at the end)")
    lines = text.split("\n")
    trailing = [i for i, line in enumerate(lines, 1) if line != line.rstrip()]
    if trailing:
        problems.append(f"trailing whitespace on lines {trailing[:_MAX_REPORTED]}")
    runs, blank = [], 0
    for i, line in enumerate(lines[:-1], 1):  # the last element is what follows the final \n
        blank = blank + 1 if not line.strip() else 0
        if blank == 3:
            runs.append(i - 2)
    if runs:
        problems.append(f"3 or more blank lines in a row from lines {runs[:_MAX_REPORTED]}")
    if not jinja_allowed:
        stripped = _NOT_JINJA.sub("", text)
        for marker in _JINJA_MARKERS:
            if marker in stripped:
                where = [i for i, ln in enumerate(lines, 1) if marker in _NOT_JINJA.sub("", ln)]
                problems.append(f"Jinja residue {marker!r} on lines {where[:_MAX_REPORTED]}")
    return problems


def _pre_commit_problems(path: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", path],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        return [f"pre-commit validate-config failed: {result.stdout}{result.stderr}".strip()]
    return []


def _check_job(job: tuple[str, str, str]) -> list[str]:
    return check_file(*job)


def check_files(
    jobs: dict[tuple[str, str, str], str], workers: int | None = None
) -> dict[tuple[str, str, str], list[str]]:
    """Run check_file once per distinct key; jobs maps (kind, sha, python) -> a path."""
    keys = list(jobs)
    args = [(kind, jobs[(kind, sha, py)], py) for kind, sha, py in keys]
    workers = min(workers or os.cpu_count() or 1, max(1, len(args)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=POOL_CONTEXT) as pool:
        results = pool.map(_check_job, args, chunksize=max(1, len(args) // (workers * 8)))
        return dict(zip(keys, results, strict=True))


# --- ruff, batched over all trees ----------------------------------------------------------


def _ruff(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    # The template dev env's ruff; --no-cache keeps .ruff_cache out of the rendered trees.
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache", "--output-format", "json", str(root)],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    )


def ruff_findings(root: Path) -> tuple[dict[str, list[str]], list[str]]:
    """One `ruff check` and one `ruff format --check` over every tree under root.

    Returns findings per tree directory name (first path component under root), and
    errors that could not be attributed to a tree (they fail every combination).
    """
    per_file, unattributed = ruff_file_findings(root)
    per_tree: dict[str, list[str]] = {}
    for (tree, _), found in per_file.items():
        per_tree.setdefault(tree, []).extend(found)
    return per_tree, unattributed


def ruff_file_findings(root: Path) -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """Like ruff_findings, by (tree, file): a tree's errors that name no file of it are
    unattributed (they fail every combination)."""
    per_file: dict[tuple[str, str], list[str]] = {}
    unattributed: list[str] = []
    for args, label in ((["check"], "ruff check"), (["format", "--check"], "ruff format")):
        result = _ruff(args, root)
        findings = json.loads(result.stdout or "[]") if result.stdout.strip() else []
        for f in findings:
            rel = Path(f["filename"]).resolve().relative_to(root.resolve())
            file = Path(*rel.parts[1:]).as_posix()
            per_file.setdefault((rel.parts[0], file), []).append(
                f"{label}: {file}:{f['location']['row']}: {f['code'] or 'error'} {f['message']}"
            )
        if result.returncode not in (0, 1) or (result.returncode == 1 and not findings):
            for line in result.stderr.splitlines():
                where = _file_of(line, root)
                if where:
                    per_file.setdefault(where, []).append(f"{label}: {line}")
                else:
                    unattributed.append(f"{label} (exit {result.returncode}): {line}")
    return per_file, unattributed


def _file_of(line: str, root: Path) -> tuple[str, str] | None:
    """(tree, file) a ruff error line names; the file is "" when the line names only a tree."""
    match = re.search(re.escape(str(root.resolve())) + r"/([^/\s:]+)(?:/([^\s:]+))?", line)
    return (match.group(1), match.group(2) or "") if match else None


# --- the whole tier-1 run ------------------------------------------------------------------

# Files a `ruff` run over a tree reads besides Python files: its configuration and ignores.
_RUFF_INPUTS = ("pyproject.toml", "ruff.toml", ".ruff.toml", ".gitignore", ".ignore")
_RUFF_SUFFIXES = (".py", ".pyi", ".ipynb")


@dataclass
class StaticReport:
    problems: dict[str, list[str]]  # combination id -> problems (empty: clean)
    trees: dict[str, Path]
    stats: dict[str, Any] = field(default_factory=dict)


def ruff_shape(files: dict[str, tuple[str, int]]) -> frozenset[tuple[str, str]]:
    """What ruff sees of a tree: its Python files and the files that configure ruff."""
    return frozenset(
        (rel, sha)
        for rel, (sha, _) in files.items()
        if rel.endswith(_RUFF_SUFFIXES) or PurePosixPath(rel).name in _RUFF_INPUTS
    )


def _ruff_settings(data: bytes) -> Any:
    """What ruff reads of a pyproject.toml: [tool.ruff] and the project's requires-python
    (its default target version)."""
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return data  # unparsable: only the same bytes are the same setting
    project = document.get("project", {})
    tool = document.get("tool", {})
    return json.dumps(
        [tool.get("ruff"), project.get("requires-python") if isinstance(project, dict) else None],
        sort_keys=True,
        default=str,
    )


def ruff_file_keys(
    shape: frozenset[tuple[str, str]], blobs: Mapping[str, bytes], cache: dict[str, Any]
) -> frozenset[tuple[str, str, Any]]:
    """(path, content, setting) of each Python file of a ruff shape. ruff checks and formats a
    file by its content and path alone, under its tree's setting: the ruff part of the
    configuration files (pyproject.toml reduced to what ruff reads, the others whole) and the
    top-level modules isort counts as first-party (those under the project root and src/). Two
    files with the same key get the same findings in whichever tree ruff checks them."""
    config = []
    for rel, sha in shape:
        if rel == "pyproject.toml":
            if sha not in cache:
                cache[sha] = _ruff_settings(blobs[sha])
            config.append((rel, cache[sha]))
        elif not rel.endswith(_RUFF_SUFFIXES):
            config.append((rel, sha))
    first_party = {
        parts[1] if parts[0] == "src" and len(parts) > 2 else parts[0]
        for rel, _ in shape
        if rel.endswith(_RUFF_SUFFIXES) and len(parts := PurePosixPath(rel).parts) > 1
    }
    setting = hashlib.sha256(
        json.dumps([sorted(config), sorted(first_party)], default=str).encode()
    ).hexdigest()
    return frozenset((rel, sha, setting) for rel, sha in shape if rel.endswith(_RUFF_SUFFIXES))


def run_static_checks(
    src: Path,
    root: Path,
    combos: list[Any],
    keep: bool = False,
    verify: int = 12,
    seed: int | None = None,
    always_verified: Iterable[str] = (),
) -> StaticReport:
    """Check every combination, each distinct artifact once; the expensive part of tier 1.

    Files come from the distinct-artifact renderer (artifacts.py): one render per template
    file and distinct tuple of the answers it reads. Per-file checks run once per distinct
    (kind, content, Python version); ruff once per distinct ruff shape (Python files plus
    ruff's configuration), over trees holding just those files; the deployment checks over
    each combination's deployment files (all but the Python sources they never read), made of
    hard links to the distinct contents.

    Soundness is proven on every run: `verify` combinations drawn with `seed` (random and
    printed when None), plus `always_verified` (ids; the first combination when empty), are
    rendered with plain copier.run_copy and compared byte for byte with their assembled
    trees; a difference fails that combination.

    The trees are scratch space, on a tmpfs when the machine has one (TIER1_SCRATCH=root keeps
    them under root): the plain renders start first, in a process of their own, beside the
    distinct-artifact render; the project-import check runs once per ruff shape (it reads the
    Python files only). Failing trees, and every tree with keep or TEMPLATE_TESTS_KEEP_TREES=1,
    are kept whole under root for inspection.
    """
    keep = keep or os.environ.get("TEMPLATE_TESTS_KEEP_TREES") == "1"
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    root.mkdir(parents=True, exist_ok=True)
    # Hundreds of thousands of links, directories and deletions: in memory when the machine
    # has a tmpfs, on root's filesystem otherwise. Trees worth keeping are moved to root.
    work = _scratch(root)

    # Soundness sample: plain Copier renders, started first in a process of their own, so they
    # use the second core while the distinct-artifact render below holds one.
    seed = random.SystemRandom().randrange(10**6) if seed is None else seed
    fixed = set(always_verified) or {c.id for c in combos[:1]}
    rest = [c for c in combos if c.id not in fixed]
    sampled = [c for c in combos if c.id in fixed]
    sampled += random.Random(seed).sample(rest, min(verify, len(rest)))
    print(f"tier 1: comparing {len(sampled)} combinations with plain Copier renders, seed {seed}")
    plain_pool = ProcessPoolExecutor(max_workers=1, mp_context=POOL_CONTEXT)
    plain_future = plain_pool.submit(plain_renders, src, sampled, work / "plain")

    _, arts = render_artifacts(src, combos)
    render_wall = time.perf_counter() - start
    ids = {c.id: i for i, c in enumerate(combos)}

    # Each distinct content on disk once, under a name it has in some tree.
    names: dict[str, str] = {}
    kinds: dict[str, dict[str, str]] = {}
    for combo_id, files in arts.files.items():
        relpaths = set(files)
        kinds[combo_id] = {
            rel: classify(rel, relpaths, arts.blobs[sha]) for rel, (sha, _) in files.items()
        }
        for rel, (sha, _) in files.items():
            names.setdefault(sha, rel)
    blobs = write_blobs(arts, work / "blobs", names)
    blobs_wall = time.perf_counter() - start - render_wall

    python_of = {c.id: str(c.answers.get("python_version", "3.11")) for c in combos}

    def key(combo_id: str, sha: str, kind: str) -> tuple[str, str, str]:
        # Only Python files and Dockerfiles are checked against the combination's Python version.
        return kind, sha, python_of[combo_id] if kind in {"py", "dockerfile"} else ""

    jobs: dict[tuple[str, str, str], str] = {}
    for combo_id, files in arts.files.items():
        for rel, (sha, _) in files.items():
            jobs.setdefault(key(combo_id, sha, kinds[combo_id][rel]), str(blobs[sha]))
    checks_start = time.perf_counter()
    file_results = check_files(jobs)
    checks_wall = time.perf_counter() - checks_start

    # Each distinct Python file through ruff once, in its setting in a tree (ruff_file_keys),
    # over as few distinct shapes as hold them all; the project's own imports once per shape
    # (they read only the Python files).
    ruff_start = time.perf_counter()
    shapes: dict[frozenset[tuple[str, str]], str] = {}
    shape_of: dict[str, str] = {}
    imports_of: dict[str, tuple[tuple[int, str], ...]] = {}
    import_findings: dict[str, list[str]] = {}
    settings_cache: dict[str, Any] = {}
    keys_of_shape: dict[str, frozenset[tuple[str, str, Any]]] = {}
    owner: dict[tuple[str, str, Any], str] = {}  # file key -> the shape ruff checks it in
    files_of_shape: dict[str, dict[str, tuple[str, int]]] = {}
    for combo_id, files in arts.files.items():
        shape = ruff_shape(files)
        if shape not in shapes:
            name = shapes[shape] = f"s{len(shapes):05d}"
            own = files_of_shape[name] = {rel: files[rel] for rel, _ in shape}
            import_findings[name] = import_problems(own, arts.blobs, imports_of)
            keys_of_shape[name] = ruff_file_keys(shape, arts.blobs, settings_cache)
        shape_of[combo_id] = shapes[shape]
    # Greedy cover: the shape holding the most keys not yet covered, until none is left.
    uncovered = set().union(*keys_of_shape.values())
    while uncovered:
        name = max(keys_of_shape, key=lambda n: len(keys_of_shape[n] & uncovered))
        owner.update(dict.fromkeys(keys_of_shape[name] & uncovered, name))
        uncovered -= keys_of_shape[name]
        materialise(files_of_shape[name], (), work / "ruff" / name, blobs)
    ruff_per_file, ruff_global = (
        ruff_file_findings(work / "ruff") if (work / "ruff").is_dir() else ({}, [])
    )
    ruff_global += [m for (_, file), found in ruff_per_file.items() if not file for m in found]
    ruff_of_shape = {
        name: [m for key in sorted(keys) for m in ruff_per_file.get((owner[key], key[0]), [])]
        for name, keys in keys_of_shape.items()
    }
    # The cover is sound: the sampled combinations' own shapes, each checked whole, get the
    # findings the cover gave them.
    ruff_mismatches: dict[str, list[str]] = {}
    sampled_shapes = {shape_of[c.id] for c in sampled}
    for name in sampled_shapes:
        materialise(files_of_shape[name], (), work / "ruff-sample" / name, blobs)
    whole, _ = ruff_findings(work / "ruff-sample") if sampled_shapes else ({}, [])
    for combo in sampled:
        name = shape_of[combo.id]
        if sorted(whole.get(name, [])) != sorted(ruff_of_shape[name]):
            ruff_mismatches[combo.id] = [
                f"ruff on the whole tree found {sorted(whole.get(name, []))}, "
                f"the cover {sorted(ruff_of_shape[name])}"
            ]
    ruff_wall = time.perf_counter() - ruff_start

    # Each combination's deployment files as hard links, for the deployment checks (whole trees
    # with keep): the Python sources, most of a tree, are checked above and read by no
    # deployment check, so they are not linked 3,000 times over only to be walked and deleted.
    trees_start = time.perf_counter()
    trees = {
        c.id: materialise(
            arts.files[c.id] if keep else deployment_files(arts.files[c.id]),
            arts.dirs[c.id],
            work / f"c{ids[c.id]:05d}",
            blobs,
        )
        for c in combos
    }
    trees_wall = time.perf_counter() - trees_start

    # Chart, Compose, pipelines and checkov: once per distinct artifact (deploy_checks.py).
    deploy_start = time.perf_counter()
    deployable = [
        tree
        for combo_id, tree in trees.items()
        if combo_id not in arts.errors
        and ("compose.yaml" in arts.files[combo_id] or "deploy" in arts.dirs[combo_id])
    ]
    deploy = run_deploy_checks(deployable) if deployable else None
    deploy_wall = time.perf_counter() - deploy_start

    # Soundness: the sample rendered by plain Copier (above) equals its assembled trees.
    verify_start = time.perf_counter()
    with plain_pool:
        plain = plain_future.result()
    mismatches = {
        cid: found for cid, tree in plain.items() if (found := tree_differences(arts, cid, tree))
    }
    verify_wall = time.perf_counter() - verify_start

    verdicts_start = time.perf_counter()
    problems: dict[str, list[str]] = {}
    for combo in combos:
        cid, tree = combo.id, trees[combo.id]
        files = arts.files[cid]
        found = [f"render failed:\n{arts.errors[cid]}"] if cid in arts.errors else []
        found += [
            f"assembled tree differs from plain Copier (seed {seed}): {m}"
            for m in mismatches.get(cid, [])
        ]
        found += ruff_mismatches.get(cid, [])
        if deploy is not None:
            found += deploy.problems.get(tree.name, [])
        found += tree_problems(files, arts.dirs[cid])
        found += import_findings[shape_of[cid]]
        for rel, (sha, _) in files.items():
            found += [f"{rel}: {p}" for p in file_results[key(cid, sha, kinds[cid][rel])]]
        found += ruff_of_shape[shape_of[cid]] + ruff_global
        problems[cid] = found
    # Failing trees (every tree with keep) are kept whole for inspection, under root; the
    # rest of the scratch space goes at once.
    if work != root:
        for cid in [cid for cid, found in problems.items() if found or keep]:
            name = trees[cid].name
            trees[cid] = materialise(arts.files[cid], arts.dirs[cid], root / name, blobs)
        shutil.rmtree(work, ignore_errors=True)
    elif not keep:
        for cid, found in problems.items():
            if not found:
                shutil.rmtree(trees[cid], ignore_errors=True)
        shutil.rmtree(work / "ruff", ignore_errors=True)
        shutil.rmtree(work / "ruff-sample", ignore_errors=True)
    shutil.rmtree(work / "plain", ignore_errors=True)
    verdicts_wall = time.perf_counter() - verdicts_start

    stats = {
        "combinations": len(combos),
        "scratch": str(work),
        "files_rendered": arts.stats["files_assembled"],
        "template_renders": arts.stats["renders"],
        "distinct_files": len(jobs),
        "ruff_shapes": len({*owner.values()}),
        "ruff_shapes_distinct": len(shapes),
        # Per kind of file: how many the trees hold, and how many distinct ones were checked
        # (e.g. every combination's Dockerfile, checked once per distinct content).
        "files_by_kind": _files_by_kind(kinds.values(), jobs),
        "render_wall_s": round(render_wall, 2),
        "blobs_wall_s": round(blobs_wall, 2),
        "file_checks_wall_s": round(checks_wall, 2),
        "ruff_wall_s": round(ruff_wall, 2),
        "trees_wall_s": round(trees_wall, 2),
        "equivalence": {
            "seed": seed,
            "sample": [c.id for c in sampled],
            "mismatched": sorted(mismatches),
            "ruff_mismatched": sorted(ruff_mismatches),
            "wall_s": round(verify_wall, 2),
        },
        "verdicts_wall_s": round(verdicts_wall, 2),
        "wall_s": round(time.perf_counter() - start, 2),
        "cpu_s": round(_cpu_seconds() - cpu_start, 2),
        "failed": sum(1 for p in problems.values() if p),
        "deploy": {**(deploy.stats if deploy else {}), "wall_s": round(deploy_wall, 2)},
    }
    return StaticReport(problems, trees, stats)


# The only Python files a deployment check reads (deploy_checks/): the probe paths the chart's
# probes must name, and the test servers the CI pipeline must install.
DEPLOYMENT_PYTHON = re.compile(r"^(src/[^/]+/health\.py|tests/support/[^/]+\.py)$")


def deployment_files(files: Mapping[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """A combination's files without the Python sources no deployment check reads."""
    return {
        rel: entry
        for rel, entry in files.items()
        if not rel.endswith(".py") or DEPLOYMENT_PYTHON.match(rel)
    }


# A tmpfs for tier 1's scratch trees: creating and deleting them is most of their cost on disk.
SCRATCH_TMPFS = Path("/dev/shm")


def _scratch(root: Path) -> Path:
    """A fresh scratch directory on the tmpfs when there is one with room (and hard links
    work there), else root itself."""
    if os.environ.get("TIER1_SCRATCH") == "root" or not SCRATCH_TMPFS.is_dir():
        return root
    stats = os.statvfs(SCRATCH_TMPFS)
    if stats.f_bavail * stats.f_frsize < 2 * 1024**3:
        return root
    return Path(tempfile.mkdtemp(prefix="tier1-", dir=SCRATCH_TMPFS))


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (pools, ruff, helm, checkov)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _files_by_kind(
    kinds: Iterable[dict[str, str]], jobs: dict[tuple[str, str, str], str]
) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for per_tree in kinds:
        for kind in per_tree.values():
            counts.setdefault(kind, {"rendered": 0, "distinct": 0})["rendered"] += 1
    for kind, _, _ in jobs:
        counts.setdefault(kind, {"rendered": 0, "distinct": 0})["distinct"] += 1
    return counts
