"""Tier 2: every pair of answers (a covering array plus the default of each framework) rendered,
installed with uv on the chosen Python, checked by the hooks of its own .pre-commit-config.yaml,
and tested by its own test suite. Slow (about a minute or more each): run with
`pytest -m tier2 -n 2`.
"""

from __future__ import annotations

import functools
import json
import shlex
import tomllib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jinja2.meta
import pytest
from combinations import Combination, answer_space
from deploy_checks import SETTINGS_PROBE, deployment_environments
from helpers import (
    check_commands,
    interpreter_for,
    project_environment,
    require,
    run_step,
    uv_binary,
)
from packaging.requirements import Requirement

pytestmark = pytest.mark.tier2

SPACE = answer_space()


def expected_seconds(answers: Mapping[str, Any]) -> float:
    """What one project of these answers takes in this tier, alone on a worker of a 2-core
    machine (measured; docs/testing.md): about 75 s without a database, PostgreSQL adds about
    75 s (migrations, the pool, outages), Django's PostgreSQL tests (users, admin, migrations,
    lent request threads) about 75 s more, Celery about 20 s (a worker and two beats).

    The cover is priced with it, so each pair of answers is run in the cheapest project that
    can hold it: PostgreSQL pairs gather in few projects instead of every other one."""
    seconds = 75.0
    if answers["database"] == "postgresql":
        seconds += 150.0 if answers["framework"] == "django" else 75.0
    if answers["scheduler"] == "celery":
        seconds += 20.0
    return seconds


PYPROJECT_SOURCE = (Path(__file__).parent.parent / "template" / "pyproject.toml.jinja").read_text(
    encoding="utf-8"
)
PYPROJECT = SPACE.env.from_string(PYPROJECT_SOURCE)
# The answers pyproject.toml reads: combinations that agree on them declare the same packages.
PYPROJECT_READS = sorted(jinja2.meta.find_undeclared_variables(SPACE.env.parse(PYPROJECT_SOURCE)))


def declared_dependencies(answers: Mapping[str, Any]) -> frozenset[str]:
    """The distribution names a project of these answers declares (its dependencies and its
    dependency groups), from its rendered pyproject.toml: each must be installed at its lowest
    declared version in one project of the cover and at its newest in another."""
    key = json.dumps([answers.get(name) for name in PYPROJECT_READS], default=str)
    if key not in _DECLARED:
        rendered = PYPROJECT.render({"_copier_operation": "copy", **answers})
        project = tomllib.loads(rendered)
        specs = [*project["project"]["dependencies"]]
        for group in project.get("dependency-groups", {}).values():
            specs += [spec for spec in group if isinstance(spec, str)]
        _DECLARED[key] = frozenset(_distribution(spec) for spec in specs)
    return _DECLARED[key]


_DECLARED: dict[str, frozenset[str]] = {}


@functools.cache
def _distribution(spec: str) -> str:
    return Requirement(spec).name


COVER = SPACE.pairwise_cover(cost=expected_seconds, holds=declared_dependencies)
DEFAULT = SPACE.default_combination()
# Every combination of the cover is installed and tested once. Most run at the newest versions
# their bounds allow; a few run their suite at the lowest declared versions of their direct
# dependencies, chosen so that every framework, backend and Python version is among them
# (AnswerSpace.lowest_versions_subset), so every declared lower bound stays true; each of
# those values is also tested at the newest versions in another project.
LOWEST = SPACE.lowest_versions_subset(cost=expected_seconds, holds=declared_dependencies)
CASES = [
    pytest.param(combo, "lowest-direct", id=f"{combo.id}-lowest-direct")
    if combo in LOWEST
    else pytest.param(combo, "highest", id=combo.id)
    for combo in COVER
]
# Longest first, so two workers finish together instead of one waiting on a late long project.
CASES.sort(key=lambda case: expected_seconds(case.values[0].answers), reverse=True)
# Rendered tests that must pass in every combination (not skipped, not deselected): one start
# names every missing production setting, and production never reads .env.
REQUIRED_TESTS = (
    "tests/test_config.py::test_every_entry_point_names_every_missing_production_setting_at_once",
    "tests/test_config.py::test_every_settings_class_with_a_load_is_checked_at_start",
    "tests/test_config.py::test_production_never_reads_dot_env_and_says_so",
)


def attempt(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str, str | None]:
    """Run one step; returns (seconds, stdout, a failure report or None)."""
    elapsed, proc = run_step(cmd, cwd, env)
    failure = None
    if proc.returncode:
        failure = (
            f"`{shlex.join(cmd)}` exited {proc.returncode} after {elapsed:.1f} s in {cwd}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
        )
    return elapsed, proc.stdout, failure


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    elapsed, stdout, failure = attempt(cmd, cwd, env)
    if failure:
        pytest.fail(failure, pytrace=False)
    return elapsed, stdout


def label(cmd: list[str]) -> str:
    return shlex.join(cmd[1:2] + cmd[4:]) if cmd[1] == "sync" else shlex.join(cmd[2:])


def installed_versions(uv: str, venv: Path, cwd: Path, env: dict[str, str]) -> list[str]:
    """What is installed in a virtual environment, one `name==version` per distribution."""
    _, stdout = run([uv, "pip", "freeze", "--python", str(venv / "bin" / "python")], cwd, env)
    return stdout.splitlines()


def run_checks(
    commands: list[list[str]], cwd: Path, env: dict[str, str], timings: dict[str, float | str]
) -> str | None:
    """The pre-commit checks, one after another; the first failure's report, or None."""
    for cmd in commands:
        seconds, _, failure = attempt(cmd, cwd, env)
        timings[label(cmd)] = round(seconds, 1)
        if failure:
            return failure
    return None


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the projects a worker checks in turn: the libraries they share (FastAPI,
    pydantic, SQLAlchemy...) are analysed once, and mypy re-checks every module whose source
    differs from the cached one (it compares contents), so each project is still judged whole."""
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.mark.parametrize(("combo", "resolution"), CASES)
def test_rendered_project_installs_and_passes_its_own_checks(
    combo: Combination,
    resolution: str,
    renderer: Any,
    tmp_path: Path,
    record_property: Any,
    mypy_cache: Path,
) -> None:
    uv = require(uv_binary(), "uv")
    version = str(combo.answers["python_version"])
    python = require(interpreter_for(version), f"a Python {version} interpreter")
    project = renderer(combo.data, tmp_path / "project")

    env = project_environment(python) | {"MYPY_CACHE_DIR": str(mypy_cache)}
    # -rA lists every passed test, so the run can be checked for the ones every combination needs.
    # Every project runs its suite as the README writes it: one pytest-xdist worker per core.
    # A suite waits a quarter or more of its time (timers, process starts, drains); beside
    # another project, a second worker fills those waits (measured in docs/testing.md).
    suite = [uv, "run", "pytest", "-q", "-rA"]
    lowest = resolution == "lowest-direct"
    # At the lowest versions the suite gets an environment of its own (outside the project, so
    # the linters never walk it), and the newest one stays whole for the checks beside it.
    # UV_RESOLUTION keeps every `uv run` at that resolution: without it, `uv run pytest` sees a
    # lockfile resolved another way, resolves again and reinstalls the newest versions.
    lowest_venv = tmp_path / "venv-lowest"
    suite_env = (
        env | {"UV_PROJECT_ENVIRONMENT": str(lowest_venv), "UV_RESOLUTION": resolution}
        if lowest
        else env
    )
    timings: dict[str, float | str] = {}
    record_property("tier2_steps", timings)  # filled as steps finish: a failure shows them too

    def step(cmd: list[str], step_env: dict[str, str]) -> str:
        seconds, stdout = run(cmd, project, step_env)
        timings[label(cmd)] = round(seconds, 1)
        return stdout

    step([uv, "sync", "-p", python], env)
    timings["deployment settings"] = round(
        _load_deployment_settings(project, uv, env, str(combo.answers["package_name"])), 1
    )
    # The pre-commit checks run beside the suite, as parallel CI jobs would: mypy is all CPU
    # while a suite spends about a quarter of its time waiting on timers and process starts.
    # The linters' own versions judge style, not whether the service works: they check at the
    # newest versions, on an environment nothing syncs under them (UV_NO_SYNC).
    checks_env = env | {"UV_NO_SYNC": "1"}
    with ThreadPoolExecutor(max_workers=1) as background:
        checks = background.submit(
            run_checks, check_commands(project, uv), project, checks_env, timings
        )
        try:
            if lowest:
                step([uv, "sync", "-p", python, "--resolution", resolution], suite_env)
                synced = installed_versions(uv, lowest_venv, project, env)
            # The README's inner loop, exactly as written, on the default project. Its guard (a
            # `fast` test that starts a process fails) is active in every full run below too,
            # so the other combinations do not pay for a second pass over the same tests.
            if combo == DEFAULT:
                step([uv, "run", "pytest", "-m", "fast"], suite_env)
            stdout = step(suite, suite_env)
            if lowest:
                assert installed_versions(uv, lowest_venv, project, env) == synced, (
                    "the suite ran on other versions than the lowest ones synced for it"
                )
        finally:
            checks_failure = checks.result()
    missing = [test for test in REQUIRED_TESTS if f"PASSED {test}" not in stdout]
    assert not missing, f"the rendered suite did not run {missing}"
    if checks_failure:
        pytest.fail(checks_failure, pytrace=False)


def _load_deployment_settings(project: Path, uv: str, env: dict[str, str], package: str) -> float:
    """The chart's config and the Compose environment, with stand-in secrets, are accepted by
    the service's own settings in production (a value the service would refuse fails here)."""
    specs = deployment_environments(project)
    assert specs, "no deployment artifact (chart or compose.yaml) in the rendered project"
    probe = project.parent / "settings_probe.py"
    probe.write_text(SETTINGS_PROBE, encoding="utf-8")
    elapsed = 0.0
    for index, spec in enumerate(specs):
        spec_file = project.parent / f"deployment-settings-{index}.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        cmd = [uv, "run", "--no-sync", "python", str(probe), str(spec_file), package]
        seconds, stdout = run(cmd, project, env)
        assert "settings accepted (APP_ENV=production)" in stdout, stdout
        elapsed += seconds
    return elapsed
