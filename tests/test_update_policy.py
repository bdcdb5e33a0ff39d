"""The update policy of docs/updates.md, checked against Copier itself.

Breaking changes between releases are shown on a small synthetic template with two tagged
releases (a renamed question, dropped files, a project-owned file), so each documented
behaviour is Copier's actual behaviour, not an assumption. The real template's copier.yml is
checked for the parts of the policy it must follow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from combinations import answer_space
from helpers import REPO_ROOT
from updates import commit_all, copier_env, git, render_at, start_repository, update

pytestmark = pytest.mark.tier4

V1 = {
    "copier.yml": """\
_skip_if_exists:
  - routes.txt
queue_name:
  type: str
  default: jobs
""",
    "template/queue.txt.jinja": "queue={{ queue_name }}\n",
    "template/dropped.txt": "template line\n",
    "template/dropped-edited.txt": "template line\n",
    "template/routes.txt": "example route v1\n",
    "template/{{ _copier_conf.answers_file }}.jinja": "{{ _copier_answers | to_nice_yaml }}",
}
# Release 2 renames queue_name to broker_queue the documented way: the old question stays,
# `ask: false` (not asked, its stored answer kept) and becomes the new question's default.
V2_BRIDGED = """\
_skip_if_exists:
  - routes.txt
queue_name:
  type: str
  default: jobs
  ask: false
broker_queue:
  type: str
  default: "{{ queue_name }}"
"""
# The tempting alternative: `when: false` discards the stored answer, so the rename silently
# falls back to the default.
V2_WHEN_FALSE = V2_BRIDGED.replace("  ask: false", "  when: false")


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _two_releases(root: Path, v2_copier_yml: str) -> Path:
    copier_env()
    repo = root / "synthetic-template"
    _write(repo, V1)
    (repo / "copier.yml").write_text("_subdirectory: template\n" + V1["copier.yml"], "utf-8")
    git(repo, "init", "--quiet", "--initial-branch=main")
    commit_all(repo, "release 1")
    git(repo, "tag", "v1.0.0")
    for name in ("template/queue.txt.jinja", "template/dropped.txt", "template/dropped-edited.txt"):
        (repo / name).unlink()
    _write(
        repo,
        {
            "copier.yml": "_subdirectory: template\n" + v2_copier_yml,
            "template/broker.txt.jinja": "queue={{ broker_queue }}\n",
            "template/routes.txt": "example route v2\n",
        },
    )
    commit_all(repo, "release 2")
    git(repo, "tag", "v2.0.0")
    return repo


def _project_at_v1(repo: Path, root: Path) -> Path:
    project = root / "project"
    render_at(repo, "v1.0.0", project, {"queue_name": "payments"})
    start_repository(project)
    (project / "dropped-edited.txt").write_text("template line\nteam line\n", encoding="utf-8")
    (project / "routes.txt").write_text("the team's routes\n", encoding="utf-8")
    commit_all(project, "Team's own changes")
    return project


def test_a_renamed_question_keeps_the_answer_through_the_ask_false_bridge(tmp_path: Path) -> None:
    project = _project_at_v1(_two_releases(tmp_path, V2_BRIDGED), tmp_path)
    update(project)
    assert (project / "broker.txt").read_text(encoding="utf-8") == "queue=payments\n"
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["broker_queue"] == "payments"
    assert answers["_commit"] == "v2.0.0"


def test_a_rename_with_when_false_would_lose_the_answer(tmp_path: Path) -> None:
    """Why the policy forbids `when: false` for renames: this is the silent fallback."""
    project = _project_at_v1(_two_releases(tmp_path, V2_WHEN_FALSE), tmp_path)
    update(project)
    assert (project / "broker.txt").read_text(encoding="utf-8") == "queue=jobs\n"


def test_dropped_files_are_removed_even_when_edited_and_the_edit_stays_in_git(
    tmp_path: Path,
) -> None:
    project = _project_at_v1(_two_releases(tmp_path, V2_BRIDGED), tmp_path)
    update(project)
    assert not (project / "dropped.txt").exists()
    assert not (project / "dropped-edited.txt").exists()
    status = git(project, "status", "--porcelain").splitlines()
    assert " D dropped-edited.txt" in status, status
    # The pull request shows the deletion; the team's text is one `git restore` away.
    assert git(project, "show", "HEAD:dropped-edited.txt") == "template line\nteam line\n"


def test_project_owned_files_keep_the_teams_version(tmp_path: Path) -> None:
    repo = _two_releases(tmp_path, V2_BRIDGED)
    project = _project_at_v1(repo, tmp_path)
    update(project)
    assert (project / "routes.txt").read_text(encoding="utf-8") == "the team's routes\n"
    fresh = tmp_path / "fresh"
    render_at(repo, "v2.0.0", fresh, {"broker_queue": "payments"})
    assert (fresh / "routes.txt").read_text(encoding="utf-8") == "example route v2\n"


# --- the real template follows the policy ------------------------------------------------


def _copier_yml() -> dict[str, object]:
    return yaml.safe_load((REPO_ROOT / "copier.yml").read_text(encoding="utf-8"))


def test_nothing_in_copier_yml_needs_trust() -> None:
    unsafe = {"_tasks", "_migrations", "_jinja_extensions", "_external_data"}
    assert not unsafe & set(_copier_yml()), "copy and update must never need --trust"


def test_every_project_owned_pattern_names_a_rendered_file(tmp_path: Path, renderer) -> None:
    """A stale _skip_if_exists entry would silently stop protecting anything. Every entry names
    a file of the default project with a database, or of the Django one (Django's models)."""
    space = answer_space()
    data = space.default_combination().data | {"database": "postgresql"}
    projects = [
        renderer(data, tmp_path / "project"),
        renderer(data | {"framework": "django"}, tmp_path / "django-project"),
    ]
    package = yaml.safe_load((projects[0] / ".copier-answers.yml").read_text())["package_name"]
    patterns = _copier_yml()["_skip_if_exists"]
    assert isinstance(patterns, list) and patterns
    for pattern in patterns:
        relative = str(pattern).replace("{{ package_name }}", package)
        rendered = [project for project in projects if (project / relative).is_file()]
        assert rendered, f"_skip_if_exists names {pattern}, which is not rendered"


def test_the_policy_page_lists_every_project_owned_file() -> None:
    page = (REPO_ROOT / "docs" / "updates.md").read_text(encoding="utf-8")
    for pattern in _copier_yml()["_skip_if_exists"]:  # type: ignore[union-attr]
        shown = str(pattern).replace("{{ package_name }}", "<package>")
        assert f"`{shown}`" in page, f"docs/updates.md does not list {shown}"
