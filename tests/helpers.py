"""Rendering and tool helpers shared by the template's tests (plain functions, picklable)."""

from __future__ import annotations

import multiprocessing
import os
import re
import shlex
import shutil
import statistics
import subprocess
import time
import traceback
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
# What a template copy needs; everything else in the repository is not part of the template.
TEMPLATE_PARTS = ("copier.yml", "template", "hooks")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ruff_cache", ".mypy_cache")
# spawn, not fork: pytest-xdist workers run threads, and forking a threaded process can hang.
POOL_CONTEXT = multiprocessing.get_context("spawn")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(value: Any, what: str) -> Any:
    """Skip when a tool is missing locally; under CI=true a missing tool is a failure."""
    if not value:
        message = f"{what} is not available"
        if in_ci():
            pytest.fail(f"{message} (CI=true: nothing is skipped)")
        pytest.skip(message)
    return value


def copy_template(dst: Path, src: Path = REPO_ROOT) -> Path:
    """Plain copy of the working tree's template (no .git: Copier renders it as it is)."""
    dst.mkdir(parents=True, exist_ok=True)
    for part in TEMPLATE_PARTS:
        source = src / part
        if source.is_dir():
            shutil.copytree(source, dst / part, ignore=_IGNORED, symlinks=True)
        elif source.exists():
            shutil.copy2(source, dst / part)
    return dst


def render(src: Path, dst: Path, data: Mapping[str, Any]) -> float:
    """Render with Copier's API exactly as a user with --defaults would; returns seconds."""
    from copier import run_copy  # imported late: worker processes pay it once

    start = time.perf_counter()
    run_copy(str(src), str(dst), data=dict(data), defaults=True, unsafe=False, quiet=True)
    return time.perf_counter() - start


@dataclass
class Rendered:
    id: str
    dst: Path
    seconds: float = 0.0
    error: str = ""
    # Filled by the worker so that hashing runs in parallel too: (relpath, sha256, kind)
    files: list[tuple[str, str, str]] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)


def accelerate_copier() -> None:
    """Make bulk rendering ~5x faster in a worker process, without changing its output.

    Copier builds a fresh Jinja environment per render, so every template file is compiled
    again for every combination; the compiled code depends only on the source and the
    environment's options, which are the same for every render of one template: cache it.
    Copier also runs `git` once per file to sync executable bits into the destination's git
    index; rendered trees here are never inside a git repository, where that is a no-op.
    test_tier1_static checks that accelerated and plain renders are byte-identical.
    Set TEMPLATE_TESTS_PLAIN_RENDER=1 to render without this.
    """
    if os.environ.get("TEMPLATE_TESTS_PLAIN_RENDER") == "1":
        return
    import copier._main
    import jinja2

    original = jinja2.Environment.compile
    cache: dict[tuple[Any, ...], Any] = {}

    def compile_cached(self, source, name=None, filename=None, raw=False, defer_init=False):
        options = tuple(
            getattr(self, attr)
            for attr in (
                *("block_start_string", "block_end_string", "variable_start_string"),
                *("variable_end_string", "comment_start_string", "comment_end_string"),
                *("line_statement_prefix", "line_comment_prefix", "trim_blocks"),
                *("lstrip_blocks", "newline_sequence", "keep_trailing_newline", "optimized"),
                "is_async",
            )
        )
        key = (
            *(source, name, filename, raw, defer_init, type(self), options),
            *(tuple(map(type, self.extensions.values())), frozenset(self.filters)),
            *(frozenset(self.tests), repr(self.autoescape), repr(self.finalize)),
        )
        if key not in cache:
            cache[key] = original(self, source, name, filename, raw, defer_init)
        return cache[key]

    jinja2.Environment.compile = compile_cached  # type: ignore[method-assign]
    copier._main.is_git_available = lambda: False  # type: ignore[attr-defined]


def _render_job(job: tuple[str, Path, Path, dict[str, Any]]) -> Rendered:
    from static_checks import manifest

    combo_id, src, dst, data = job
    result = Rendered(combo_id, dst)
    try:
        result.seconds = render(src, dst, data)
        result.files, result.dirs = manifest(dst)
    except Exception:  # reported as this combination's failure, not the whole run's
        result.error = traceback.format_exc()
    return result


def render_many(
    src: Path, root: Path, combos: Iterable[Any], workers: int | None = None
) -> dict[str, Rendered]:
    """Render combinations in parallel, one directory each under root (named by index,
    since an id may hold characters a path should not)."""
    jobs = [(c.id, src, root / f"c{i:05d}", dict(c.data)) for i, c in enumerate(combos)]
    workers = min(workers or os.cpu_count() or 1, max(1, len(jobs)))
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=POOL_CONTEXT, initializer=accelerate_copier
    ) as pool:
        results = list(pool.map(_render_job, jobs, chunksize=max(1, len(jobs) // (workers * 8))))
    return {r.id: r for r in results}


def read_tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for a directory), for exact comparisons."""
    return {
        p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else 0.0


def uv_binary() -> str | None:
    """The uv executable, resolved once to an absolute path (never a pyenv shim)."""
    found = shutil.which("uv")
    return str(Path(found).resolve()) if found else None


def pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def interpreter_for(version: str) -> str | None:
    """Absolute path of a real interpreter for e.g. "3.12" (highest patch under pyenv)."""
    candidates = []
    for path in pyenv_root().glob(f"versions/{version}.*/bin/python{version}"):
        patch = re.fullmatch(rf"{re.escape(version)}\.(\d+)", path.parent.parent.name)
        if patch:
            candidates.append((int(patch.group(1)), path))
    if candidates:
        return str(max(candidates)[1])
    # Outside pyenv: search PATH without the shims, which would switch interpreters.
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    found = shutil.which(
        f"python{version}", path=os.pathsep.join(d for d in dirs if "shims" not in d)
    )
    return str(Path(found).resolve()) if found else None


# Variables of the outer environment that would point uv at the template's own venv.
_OUTER = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME", "UV_PYTHON")
STEP_TIMEOUT = 900


def project_environment(python: str) -> dict[str, str]:
    """Environment for commands run inside a rendered project: never download Pythons, and pin
    the interpreter by absolute path so a `.python-version` seen by pyenv shims never
    switches it."""
    env = {k: v for k, v in os.environ.items() if k not in _OUTER}
    return env | {"UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON": python, "UV_NO_PROGRESS": "1"}


def run_step(
    cmd: list[str], cwd: Path, env: Mapping[str, str], timeout: float = STEP_TIMEOUT
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run one command of a rendered project; returns (seconds, the finished process)."""
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env=dict(env), capture_output=True, text=True, check=False, timeout=timeout
    )
    return time.perf_counter() - start, proc


def check_commands(project: Path, uv: str) -> list[list[str]]:
    """The checks the rendered pre-commit config runs, in check-only form.

    pre-commit itself cannot run here (it clones hook repositories), so each local
    `language: system` hook's entry is run over the whole project: fixes become checks.
    """
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    commands = []
    for repo in config.get("repos", []):
        for hook in repo.get("hooks", []):
            assert repo.get("repo") == "local" and hook.get("language") == "system", (
                f"hook {hook.get('id')} is not a local system hook: tier 2 cannot run it"
            )
            args = [a for a in shlex.split(hook["entry"]) if a != "--fix"]
            if args[:4] == ["uv", "run", "ruff", "format"] and "--check" not in args:
                args.append("--check")
            args += [str(a) for a in hook.get("args", [])]
            if hook.get("pass_filenames", True):
                args.append(".")
            commands.append([uv if args[0] == "uv" else args[0], *args[1:]])
    return commands
