"""Tier 4: projects rendered at the previous release, updated to the working tree.

* every combination of the previous release's answer space, untouched: `copier update` (no
  --trust) must give exactly a fresh render at the new version, without conflict markers;
* the default and a few others with a team's typical edits: the edits survive, no conflicts,
  and nothing else differs from a fresh render;
* the CLI a bot runs (`copier update --defaults`, no --trust) behaves the same.
"""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import user_edits
import yaml
from combinations import AnswerSpace
from helpers import POOL_CONTEXT, REPO_ROOT, accelerate_copier, copy_template, in_ci, require
from releases import PREVIOUS_RELEASE, current_version
from updates import (
    GIT_IDENTITY,
    QUICK_START_URL,
    UpdateJob,
    build_release_repo,
    commit_all,
    conflicts_in,
    copier_env,
    copy_destination,
    git,
    has_commit,
    project_files,
    readme_quick_start,
    render_at,
    run_update_job,
    shell,
    start_repository,
    tag_working_tree,
    template_change,
    template_repo,
)

pytestmark = pytest.mark.tier4

NEW_TAG = f"v{current_version()}"
PROJECT_OWNED = tuple(
    yaml.safe_load((REPO_ROOT / "copier.yml").read_text(encoding="utf-8"))["_skip_if_exists"]
)
OLD_TAG = PREVIOUS_RELEASE.tag
# Answers for projects rendered from the working tree: its defaults plus a name.
WORKING_TREE_DATA = {"project_name": "Order Service"}


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
    assert f"already on the newest template version, release {NEW_TAG}" in up_to_date.stdout

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
    assert f"updated to release {next_tag}" in updated.stdout
    assert "Next release note." in (project / "README.md").read_text(encoding="utf-8")

    conflicted = _run_script(edited)
    assert conflicted.returncode == 1, conflicted.stdout + conflicted.stderr
    listed = conflicted.stderr.split("resolve by hand:", 1)[1].split()
    assert listed == ["README.md"], f"each conflicted file once: {conflicted.stderr}"


# --- the README's quick start, release tags or none, and an unusable template source ------


def _answers(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))


def _readme(project: Path) -> str:
    return (project / "README.md").read_text(encoding="utf-8")


def _render_as_the_readme_says(template: Path, workdir: Path) -> Path:
    """The README's render block, with only the template URL replaced, as documented."""
    require(shutil.which("uvx"), "uvx (uv's tool runner, used by the quick start)")
    block = readme_quick_start().render
    assert QUICK_START_URL in block, "the README no longer names the URL it tells users to replace"
    proc = shell(block.replace(QUICK_START_URL, shlex.quote(str(template))), cwd=workdir)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    project = workdir / copy_destination(block)
    assert not git(project, "status", "--porcelain"), "the quick start commits the render"
    return project


def test_the_readme_quick_start_renders_a_service_that_updates(
    tmp_path: Path, record_property: Any
) -> None:
    """Issue 13: `copier copy . ../my-service` recorded `.` and every update then failed.

    The template here has no release tags, so it also shows the untagged flow: updates go to
    the latest commit and the script says so.
    """
    copier_env()
    quick = readme_quick_start()
    repo = template_repo(tmp_path / "template")
    start = time.perf_counter()
    project = _render_as_the_readme_says(repo, tmp_path)
    render_s = time.perf_counter() - start
    answers = _answers(project)
    assert answers["_src_path"] == str(repo), "the render records a source updates can reach"
    assert answers["_commit"] == git(repo, "describe", "--tags", "--always").strip()

    template_change(repo, "First change after the render.")
    start = time.perf_counter()
    by_copier = shell(quick.update, cwd=project)
    update_s = time.perf_counter() - start
    assert by_copier.returncode == 0, by_copier.stderr[-3000:]
    assert "First change after the render." in _readme(project)
    assert not conflicts_in(project_files(project))
    commit_all(project, "Update from the template")

    second = template_change(repo, "Second change after the render.")
    env = {k: v for k, v in os.environ.items() if k != "COPIER"}  # the script's own uvx Copier
    start = time.perf_counter()
    by_script = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quick.script],
        cwd=project,
        env={**env, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    script_s = time.perf_counter() - start
    assert by_script.returncode == 0, by_script.stdout + by_script.stderr[-3000:]
    assert "Second change after the render." in _readme(project)
    assert f"updated to commit {second} (the template has no release tags" in by_script.stdout
    assert _answers(project)["_commit"] == second
    record_property(
        "readme_update_flow",
        {
            "exit": by_script.returncode,
            "render_s": round(render_s, 1),
            "copier_update_s": round(update_s, 1),
            "script_s": round(script_s, 1),
        },
    )


def test_a_tagged_template_updates_to_its_newest_tag(tmp_path: Path) -> None:
    copier_env()
    repo = template_repo(tmp_path / "template", tag="v1.0.0")
    template_change(repo, "Merged after v1.0.0.")
    project = _render_as_the_readme_says(repo, tmp_path)
    assert _answers(project)["_commit"] == "v1.0.0", "a render takes the newest tag, not HEAD"
    assert "Merged after v1.0.0." not in _readme(project)

    template_change(repo, "Released in v1.1.0.", tag="v1.1.0")
    template_change(repo, "Merged after v1.1.0.")
    updated = _run_script(project)
    assert updated.returncode == 0, updated.stderr[-3000:]
    assert "updated to release v1.1.0" in updated.stdout
    assert _answers(project)["_commit"] == "v1.1.0"
    assert "Released in v1.1.0." in _readme(project)
    assert "Merged after v1.1.0." not in _readme(project), "updates stop at the newest tag"

    commit_all(project, "Update from the template")
    again = _run_script(project)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already on the newest template version, release v1.1.0" in again.stdout


def test_an_unusable_template_source_is_refused_with_the_fix(tmp_path: Path) -> None:
    copier_env()
    repo = template_repo(tmp_path / "template")
    project = tmp_path / "project"
    render_at(repo, "HEAD", project, WORKING_TREE_DATA)
    start_repository(project)
    commit = _answers(project)["_commit"]
    plain = tmp_path / "plain-directory"
    plain.mkdir()
    other = tmp_path / "other-repo"
    other.mkdir()
    git(other, "init", "--quiet")
    commit_all(other, "unrelated")
    cases = {
        ".": "a relative path",
        "../template": "a relative path",
        str(tmp_path / "missing"): "does not exist",
        str(plain): "not the root of a git repository",
        str(repo / "template"): "not the root of a git repository",
        str(project): "this project itself",
        str(other): f"has no revision {commit}",
    }
    answers_file = project / ".copier-answers.yml"
    rendered = answers_file.read_text(encoding="utf-8")
    for src, cause in cases.items():
        answers_file.write_text(
            rendered.replace(f"_src_path: {repo}", f"_src_path: {src}"), encoding="utf-8"
        )
        commit_all(project, f"_src_path: {src}")
        proc = _run_script(project)
        assert proc.returncode == 2, (src, proc.stdout, proc.stderr)
        assert cause in proc.stderr, (src, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr
        assert "sed -i.orig 's|^_src_path: .*|_src_path: TEMPLATE|'" in proc.stderr, proc.stderr
        assert not git(project, "status", "--porcelain"), "nothing was touched"

    # Following the printed fix, with the template's real location, updates the service.
    fix = [line.strip() for line in proc.stderr.splitlines() if line.startswith("    ")]
    assert fix[0].startswith("sed ") and fix[1].startswith("git commit "), proc.stderr
    fixed = shell("\n".join(fix[:2]).replace("TEMPLATE", str(repo)), cwd=project)
    assert fixed.returncode == 0, fixed.stderr
    assert _answers(project)["_src_path"] == str(repo)
    change = template_change(repo, "After the source was fixed.")
    updated = _run_script(project)
    assert updated.returncode == 0, updated.stderr[-3000:]
    assert f"updated to commit {change}" in updated.stdout
    assert "After the source was fixed." in _readme(project)
