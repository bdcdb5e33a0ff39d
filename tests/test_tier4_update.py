"""Tier 4: projects rendered at the previous release, updated to the working tree.

* every combination of the previous release's answer space, untouched: `copier update` (no
  --trust) must give exactly a fresh render at the new version, without conflict markers;
* the default and a few others with a team's typical edits: the edits survive, no conflicts,
  and nothing else differs from a fresh render;
* the CLI a bot runs (`copier update --defaults`, no --trust) behaves the same.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import user_edits
import yaml
from combinations import AnswerSpace
from helpers import POOL_CONTEXT, REPO_ROOT, accelerate_copier, copy_template, in_ci
from releases import PREVIOUS_RELEASE, current_version
from updates import (
    GIT_IDENTITY,
    UpdateJob,
    build_release_repo,
    commit_all,
    conflicts_in,
    copier_env,
    has_commit,
    project_files,
    render_at,
    run_update_job,
    start_repository,
    tag_working_tree,
)

pytestmark = pytest.mark.tier4

NEW_TAG = f"v{current_version()}"
PROJECT_OWNED = tuple(
    yaml.safe_load((REPO_ROOT / "copier.yml").read_text(encoding="utf-8"))["_skip_if_exists"]
)
OLD_TAG = PREVIOUS_RELEASE.tag


def _previous_answer_space() -> AnswerSpace | None:
    if not has_commit(PREVIOUS_RELEASE.commit):
        # A shallow clone lacks the previous release: fetch it once, quietly.
        subprocess.run(["git", "fetch", "--quiet", "--unshallow"], cwd=REPO_ROOT, check=False)
    if not has_commit(PREVIOUS_RELEASE.commit):
        return None
    text = subprocess.run(
        ["git", "show", f"{PREVIOUS_RELEASE.commit}:copier.yml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"copier-{PREVIOUS_RELEASE.commit[:12]}.yml"
    path.write_text(text, encoding="utf-8")
    return AnswerSpace(path)


PREVIOUS = _previous_answer_space()


def _require_previous_release() -> None:
    if PREVIOUS is None:
        message = f"previous release {PREVIOUS_RELEASE.commit} is not in this clone's history"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def release_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_previous_release()
    copier_env()
    return build_release_repo(tmp_path_factory.mktemp("releases"), PREVIOUS_RELEASE, NEW_TAG)


def _init_worker() -> None:
    accelerate_copier()
    copier_env()


def test_release_tags_are_ordered_pep440() -> None:
    from packaging.version import Version

    assert Version(PREVIOUS_RELEASE.version) < Version(current_version()), (
        "pyproject.toml's version must be newer than tests/releases.py's PREVIOUS_RELEASE"
    )


def test_every_previous_combination_updates_to_a_fresh_render(
    release_repo: Path, tmp_path: Path, record_property: Any
) -> None:
    assert PREVIOUS is not None
    combos = PREVIOUS.combinations
    jobs = [
        UpdateJob(
            c.id,
            release_repo,
            OLD_TAG,
            NEW_TAG,
            dict(c.data),
            tmp_path / f"u{i:04d}",
            project_owned=PROJECT_OWNED,
        )
        for i, c in enumerate(combos)
    ]
    workers = min(os.cpu_count() or 1, len(jobs))
    with ProcessPoolExecutor(workers, mp_context=POOL_CONTEXT, initializer=_init_worker) as pool:
        outcomes = list(pool.map(run_update_job, jobs))
    for job in jobs:  # a few hundred MB of projects otherwise stay on disk
        shutil.rmtree(job.workdir, ignore_errors=True)

    errors = {o.id: o.error for o in outcomes if o.error}
    conflicted = {o.id: o.conflicts for o in outcomes if o.conflicts}
    different = {o.id: o.differences for o in outcomes if o.differences}
    seconds = [o.update_seconds for o in outcomes if not o.error]
    record_property(
        "tier4",
        {
            "from": OLD_TAG,
            "to": NEW_TAG,
            "combinations": len(outcomes),
            "failed": len(set(errors) | set(conflicted) | set(different)),
            "conflicts": sum(len(c) for c in conflicted.values()),
            "median_update_s": round(statistics.median(seconds), 2) if seconds else 0.0,
        },
    )
    assert not errors, "update failed:\n" + "\n".join(f"{k}:\n{v}" for k, v in errors.items())
    assert not conflicted, f"conflict markers after update: {conflicted}"
    assert not different, f"updated projects differ from a fresh render: {different}"
    assert len(outcomes) == len(PREVIOUS.combinations) > 1


# A team's edits before the update: a new route in the project-owned routes module, a changed
# value in .env.example, a rewritten README introduction, a new dependency and a new module.
TEAM_EDITS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("add_route", ()),
    ("change_env_example", ("KEEPALIVE_TIMEOUT_SECONDS", "90")),
    ("edit_readme_description", ()),
    ("add_dependency", ("httpx>=0.28,<1",)),
    ("add_module", ()),
)
EDITED_FILES = {"README.md", ".env.example", "pyproject.toml"}


def _edit_cases() -> list[Any]:
    if PREVIOUS is None:
        return [pytest.param({}, id="no-previous-release")]
    cases = {"default": {}}
    cases["memcached-postgresql"] = {"cache_backend": "memcached", "database": "postgresql"}
    cases["valkey-tracing-py3.13"] = {
        "cache_backend": "valkey",
        "tracing": True,
        "python_version": "3.13",
    }
    base = PREVIOUS.default_combination().data
    return [pytest.param({**base, **extra}, id=name) for name, extra in cases.items()]


@pytest.mark.parametrize("old_data", _edit_cases())
def test_team_edits_survive_the_update(
    old_data: dict[str, Any], release_repo: Path, tmp_path: Path
) -> None:
    job = UpdateJob(
        "edits", release_repo, OLD_TAG, NEW_TAG, old_data, tmp_path, TEAM_EDITS, True, PROJECT_OWNED
    )
    outcome = run_update_job(job)  # in this process: Copier exactly as shipped, not accelerated
    assert not outcome.error, outcome.error
    assert not outcome.conflicts, f"conflict markers after update: {outcome.conflicts}"
    project = tmp_path / "project"
    assert user_edits.route_survived(project)
    assert user_edits.env_example_survived(project, "KEEPALIVE_TIMEOUT_SECONDS", "90")
    assert user_edits.readme_survived(project)
    assert user_edits.dependency_survived(project, "httpx>=0.28,<1")
    assert user_edits.module_survived(project)
    package = user_edits.package_name(project)
    expected = EDITED_FILES | {
        f"src/{package}/web/routes.py",  # project-owned: kept as the team left it
        f"src/{package}/orders.py",
    }
    unexpected = [d for d in outcome.differences if d.split(": ", 1)[1] not in expected]
    assert not unexpected, f"files other than the edited ones differ: {unexpected}"


def test_the_cli_a_bot_runs_updates_without_trust(release_repo: Path, tmp_path: Path) -> None:
    assert PREVIOUS is not None
    project = tmp_path / "project"
    render_at(release_repo, OLD_TAG, project, PREVIOUS.default_combination().data)
    start_repository(project)
    copier = Path(sys.executable).with_name("copier")
    proc = subprocess.run(
        [str(copier), "update", "--defaults"],
        cwd=project,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["_commit"] == NEW_TAG
    assert not conflicts_in(project_files(project))


def _run_script(project: Path) -> subprocess.CompletedProcess[str]:
    copier = Path(sys.executable).with_name("copier")
    return subprocess.run(
        ["bash", "scripts/template-update.sh"],
        cwd=project,
        env={**os.environ, **GIT_IDENTITY, "COPIER": str(copier)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_update_script_updates_refuses_dirty_trees_and_reports_conflicts(
    tmp_path: Path,
) -> None:
    """scripts/template-update.sh, the rendered projects' documented update command."""
    _require_previous_release()
    assert PREVIOUS is not None
    copier_env()
    repo = build_release_repo(tmp_path / "releases", PREVIOUS_RELEASE, NEW_TAG)
    project = tmp_path / "project"
    render_at(repo, NEW_TAG, project, PREVIOUS.default_combination().data)
    start_repository(project)

    up_to_date = _run_script(project)
    assert up_to_date.returncode == 0, up_to_date.stderr
    assert "already on the newest template release" in up_to_date.stdout

    # The next release appends a line to the README.
    next_tag = f"{NEW_TAG}.post1"
    next_release = copy_template(tmp_path / "next")
    readme = next_release / "template" / "README.md.jinja"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nNext release note.\n", "utf-8")
    tag_working_tree(repo, next_tag, src=next_release)

    (project / "scratch.txt").write_text("uncommitted\n", encoding="utf-8")
    dirty = _run_script(project)
    assert dirty.returncode == 2 and "clean tree" in dirty.stderr
    (project / "scratch.txt").unlink()

    edited = tmp_path / "edited"
    shutil.copytree(project, edited)
    with (edited / "README.md").open("a", encoding="utf-8") as f:
        f.write("\nOur own closing words.\n")
    commit_all(edited, "Team's README ending")

    updated = _run_script(project)
    assert updated.returncode == 0, updated.stderr
    assert f"updated to {next_tag}" in updated.stdout
    assert "Next release note." in (project / "README.md").read_text(encoding="utf-8")

    conflicted = _run_script(edited)
    assert conflicted.returncode == 1, conflicted.stdout + conflicted.stderr
    assert "README.md" in conflicted.stderr
