"""What the rendered text says: deployment files name only what the answers chose, and no Markdown
file has a heading twice."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from deploy_checks.common import _files, read_text, read_yaml

# Wording that only a project with a given answer may contain, in the files that describe its
# deployment (the chart, Compose, HAProxy, the pipelines, the dependency bot's configuration):
# answer -> value -> (pattern that must not appear, what it names). A chart README that says
# "S3-compatible" in an Azure project, or a migration Job in a project without a database,
# misleads whoever deploys it.
FOREIGN_WORDING: dict[str, dict[str, tuple[str, str]]] = {
    "database": {
        "none": (r"(?i)migrat|database|\bDB_|postgres|alembic", "a database"),
    },
    "storage_provider": {
        "s3": (
            r"(?i)google cloud|\bGCS\b|GOOGLE_|azure blob|AZURE_|azurite|STORAGE_LOCAL|"
            r"sharedStorage",
            "another storage provider",
        ),
        "gcs": (
            r"\bS3\b|AWS_|(?i:azure blob|AZURE_|azurite)|STORAGE_LOCAL|sharedStorage",
            "another storage provider",
        ),
        "azure": (
            r"\bS3\b|AWS_|(?i:google cloud|\bGCS\b|GOOGLE_)|STORAGE_LOCAL|sharedStorage",
            "another storage provider",
        ),
        "local": (
            r"\bS3\b|AWS_|(?i:google cloud|\bGCS\b|GOOGLE_|azure blob|AZURE_|azurite|"
            r"bucket)",
            "object storage",
        ),
    },
    "cache_backend": {
        "redis": (r"(?i)memcache", "another store"),
        "valkey": (r"(?i)memcache", "another store"),
        "memcached": (r"(?i)redis(?!patch)|valkey", "another store"),
    },
    "deployment_target": {
        "compose": (r"(?i)\bhelm\b|\bchart\b|kubectl", "a Helm chart"),
    },
    "scheduler": {
        "none": (r"(?i)celery|redbeat|cronjob|run-job|scheduled job|JOBS_|LOCK_URL", "a scheduler"),
        "inprocess": (r"(?i)celery|redbeat|cronjob|run-job", "another scheduler"),
        "celery": (
            r"(?i)cronjob|run-job|JOBS_SCHEDULER_ENABLED|in-process scheduler",
            "another scheduler",
        ),
        "cronjob": (
            r"(?i)celery|redbeat|JOBS_SCHEDULER_ENABLED|in-process scheduler",
            "another scheduler",
        ),
    },
}


def answers_of(tree: Path) -> dict[str, Any]:
    path = tree / ".copier-answers.yml"
    return read_yaml(path) if path.is_file() else {}


# The chart's helper library and schema serve every value set (a shared volume or a bucket), so
# only the database rule, which removes whole value groups, applies to them too.
SHARED_CHART_FILES = {"_helpers.tpl", "values.schema.json"}


def deployment_texts(tree: Path) -> list[Path]:
    """The files that describe how the project is deployed and checked."""
    paths = [*_files(tree / "deploy"), *sorted(tree.glob("compose*.yaml"))]
    paths += _files(tree / ".github") + _files(tree / ".gitlab")
    paths += [p for p in (tree / ".gitlab-ci.yml",) if p.is_file()]
    return paths


def wording_problems(tree: Path) -> list[str]:
    """Every deployment file names only what the answers chose (FOREIGN_WORDING)."""
    answers = answers_of(tree)
    rules = [
        (question, *rule)
        for question, by_value in FOREIGN_WORDING.items()
        if (rule := by_value.get(str(answers.get(question)))) is not None
    ]
    problems: list[str] = []
    for path in deployment_texts(tree):
        applicable = tuple(
            rule for rule in rules if path.name not in SHARED_CHART_FILES or rule[0] == "database"
        )
        rel = path.relative_to(tree).as_posix()
        problems += [
            f"{rel}:{number} names {what} ({found!r})"
            for number, what, found in _foreign_lines(read_text(path), applicable)
        ]
    return problems


@cache
def _foreign_lines(
    text: str, rules: tuple[tuple[str, str, str], ...]
) -> tuple[tuple[int, str, str], ...]:
    """(line number, what it names, the words) for each line a rule's pattern matches."""
    found = []
    for _, pattern, what in rules:
        for number, line in enumerate(text.splitlines(), 1):
            if match := re.search(pattern, line):
                found.append((number, what, match.group(0)))
    return tuple(found)


_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@cache
def duplicate_headings(text: str) -> tuple[str, ...]:
    """Headings of a Markdown document that occur twice (outside code blocks)."""
    seen: set[str] = set()
    duplicates: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else _HEADING.match(line)
        if heading:
            title = heading.group(2).strip().lower()
            if title in seen:
                duplicates.append(heading.group(2).strip())
            seen.add(title)
    return tuple(duplicates)


def markdown_problems(tree: Path) -> list[str]:
    problems: list[str] = []
    for path in sorted(tree.rglob("*.md")):
        if ".venv" in path.parts or "node_modules" in path.parts:
            continue
        for title in duplicate_headings(read_text(path)):
            problems.append(f"{path.relative_to(tree).as_posix()}: heading {title!r} twice")
    return problems
