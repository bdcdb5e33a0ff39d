"""`copier update` as a team (or its bot) runs it, for the tier-4 tests.

A throw-away git repository stands in for the template's published history: the previous
release's files as one commit tagged with its version, the working tree as the next commit
tagged with the version being prepared. Projects are rendered from it at the old tag, committed,
updated to the newest tag with Copier's API (``unsafe=False``: nothing may need ``--trust``),
and compared with a fresh render at the new tag. Every function here is picklable, so a
process pool can run one combination per job.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from helpers import REPO_ROOT, copy_template
from releases import Release

# Commits in the throw-away repositories and projects need an identity on any machine.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "template-tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "template-tests@example.com",
}
CONFLICT_PREFIXES = (b"<<<<<<< ", b">>>>>>> ")


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--allow-empty", "--message", message)


def has_commit(commit: str, repo: Path = REPO_ROOT) -> bool:
    proc = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=repo, capture_output=True
    )
    return proc.returncode == 0


def build_release_repo(root: Path, previous: Release, current_tag: str) -> Path:
    """A repository whose tags are the previous release and the working tree."""
    repo = root / "template-releases"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "--initial-branch=main")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", previous.commit, "copier.yml", "template", "hooks"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive.stdout, check=True)
    commit_all(repo, f"release {previous.version}")
    git(repo, "tag", previous.tag)
    tag_working_tree(repo, current_tag)
    return repo


def tag_working_tree(repo: Path, tag: str, src: Path = REPO_ROOT) -> None:
    """Replace the repository's template files by those of src and tag the result."""
    for part in ("copier.yml", "template", "hooks"):
        git(repo, "rm", "-r", "--quiet", "--ignore-unmatch", part)
    copy_template(repo, src)
    commit_all(repo, f"release {tag}")
    git(repo, "tag", tag)


def copier_env() -> None:
    """Process-wide settings for workers: git identity, and Copier's settings kept out."""
    os.environ.update(GIT_IDENTITY)
    if "COPIER_SETTINGS_PATH" not in os.environ:
        settings = Path(tempfile.mkdtemp(prefix="copier-settings-")) / "settings.yml"
        settings.write_text("{}\n", encoding="utf-8")
        os.environ["COPIER_SETTINGS_PATH"] = str(settings)


def render_at(repo: Path, tag: str, dst: Path, data: Mapping[str, Any]) -> None:
    from copier import run_copy

    run_copy(
        str(repo), str(dst), data=dict(data), vcs_ref=tag, defaults=True, unsafe=False, quiet=True
    )


def start_repository(project: Path) -> None:
    """What a team does after `copier copy`: put the project under git."""
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "Render from the template")


def update(project: Path, data: Mapping[str, Any] | None = None) -> float:
    """`copier update --defaults` to the newest tag; returns seconds."""
    from copier import run_update

    start = time.perf_counter()
    run_update(
        str(project),
        data=dict(data or {}),
        defaults=True,
        overwrite=True,
        unsafe=False,
        quiet=True,
        conflict="inline",
    )
    return time.perf_counter() - start


def project_files(root: Path) -> dict[str, bytes]:
    """Every file under root except git's own, by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def conflicts_in(files: Mapping[str, bytes]) -> list[str]:
    """Files with conflict markers, and rejected hunks left behind."""
    found = [path for path in files if path.endswith(".rej")]
    for path, content in files.items():
        if any(line.startswith(CONFLICT_PREFIXES) for line in content.splitlines()):
            found.append(path)
    return sorted(found)


def tree_differences(got: Mapping[str, bytes], expected: Mapping[str, bytes]) -> list[str]:
    only_got = sorted(set(got) - set(expected))
    only_expected = sorted(set(expected) - set(got))
    changed = sorted(p for p in set(got) & set(expected) if got[p] != expected[p])
    return (
        [f"only after update: {p}" for p in only_got]
        + [f"only in fresh render: {p}" for p in only_expected]
        + [f"differs: {p}" for p in changed]
    )


def kept_as_project_owned(
    path: str, owned: list[str], before: Mapping[str, bytes], after: Mapping[str, bytes]
) -> bool:
    """A project-owned file is expected to differ from a fresh render: the update keeps it."""
    return any(fnmatch.fnmatchcase(path, p) for p in owned) and before.get(path) == after.get(path)


@dataclass
class UpdateOutcome:
    id: str
    update_seconds: float = 0.0
    differences: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    error: str = ""
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateJob:
    id: str
    repo: Path
    old_tag: str
    new_tag: str
    old_data: Mapping[str, Any]
    workdir: Path
    # Edits a team makes before updating: (name of a function in user_edits, its arguments).
    edits: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    keep_files: bool = False
    # The new version's _skip_if_exists patterns: copier update leaves these files as they were.
    project_owned: tuple[str, ...] = ()


def run_update_job(job: UpdateJob) -> UpdateOutcome:
    """Render at the old tag, (edit), update to the new tag, compare with a fresh render."""
    import user_edits

    outcome = UpdateOutcome(job.id)
    project, fresh = job.workdir / "project", job.workdir / "fresh"
    try:
        render_at(job.repo, job.old_tag, project, job.old_data)
        start_repository(project)
        for name, args in job.edits:
            edit: Callable[..., None] = getattr(user_edits, name)
            edit(project, *args)
        if job.edits:
            commit_all(project, "Team's own changes")
        before = project_files(project)
        outcome.update_seconds = update(project)
        render_at(job.repo, job.new_tag, fresh, job.old_data)
        got, expected = project_files(project), project_files(fresh)
        outcome.conflicts = conflicts_in(got)
        package = yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]
        owned = [p.replace("{{ package_name }}", package) for p in job.project_owned]
        outcome.differences = [
            d
            for d in tree_differences(got, expected)
            if not kept_as_project_owned(d.split(": ", 1)[1], owned, before, got)
        ]
        if job.keep_files:
            outcome.files = got
    except Exception:  # reported as this combination's failure, not the whole run's
        outcome.error = traceback.format_exc()
    return outcome


# --- the README's quick start and the two release flows ----------------------------------

# The README tells users to replace this URL by the template's location (and nothing else).
QUICK_START_URL = "https://github.com/ORG/cluster-service-template.git"


@dataclass(frozen=True)
class QuickStart:
    render: str  # the code block that renders and commits a service
    update: str  # the plain Copier update command the README names
    script: str  # the code block that runs the update script


def readme_quick_start(readme: Path = REPO_ROOT / "README.md") -> QuickStart:
    """The commands of the README's "Set up" section, exactly as written there."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, flags=re.M | re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", section, flags=re.M | re.S))
    render = [b for b in blocks if " copier copy " in b]
    script = [b for b in blocks if "template-update.sh" in b]
    update = [s for s in spans if " copier update " in s]
    assert len(render) == len(script) == len(update) == 1, (render, script, update)
    return QuickStart(render[0], update[0], script[0])


def copy_destination(render_block: str) -> str:
    """The destination argument of the block's `copier copy` command."""
    line = next(line for line in render_block.splitlines() if " copier copy " in line)
    return shlex.split(line)[-1]


def template_repo(root: Path, tag: str | None = None) -> Path:
    """A git repository with the working tree's template as one commit (tagged if asked)."""
    repo = copy_template(root)
    git(repo, "init", "--quiet", "--initial-branch=main")
    commit_all(repo, "template")
    if tag:
        git(repo, "tag", "--annotate", tag, "--message", f"Release {tag}")
    return repo


def template_change(repo: Path, line: str, tag: str | None = None) -> str:
    """A new template commit that appends line to the rendered README; returns its describe."""
    readme = repo / "template" / "README.md.jinja"
    readme.write_text(readme.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    commit_all(repo, line)
    if tag:
        git(repo, "tag", "--annotate", tag, "--message", f"Release {tag}")
    return git(repo, "describe", "--tags", "--always").strip()


def shell(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A documented command block, run by bash as a user would paste it."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={**os.environ, **GIT_IDENTITY, **env},
        capture_output=True,
        text=True,
        check=False,
    )
