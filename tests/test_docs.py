"""The documentation site builds strictly, and documents every question in copier.yml."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
QUESTIONS_DIR = REPO_ROOT / "docs" / "questions"

pytestmark = pytest.mark.tier1


class _TolerantLoader(yaml.SafeLoader):
    """Safe loader that reads Copier's own tags (``!include`` …) as plain nodes."""


def _construct_any(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_TolerantLoader.add_multi_constructor("!", _construct_any)


def copier_questions() -> list[str]:
    """Question names of copier.yml: every top-level key not starting with ``_``.

    Copier merges the documents of a multi-document copier.yml, so all documents are read.
    """
    text = (REPO_ROOT / "copier.yml").read_text(encoding="utf-8")
    names: list[str] = []
    for document in yaml.load_all(text, Loader=_TolerantLoader):
        for key in document or {}:
            if isinstance(key, str) and not key.startswith("_") and key not in names:
                names.append(key)
    return names


def test_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(REPO_ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()


def test_copier_yml_has_questions() -> None:
    # Guards the next test against passing vacuously on a misread copier.yml.
    assert "project_name" in copier_questions()


@pytest.mark.parametrize("question", copier_questions())
def test_every_question_is_documented(question: str) -> None:
    pages = sorted(QUESTIONS_DIR.rglob("*.md"))
    assert pages, f"no pages under {QUESTIONS_DIR.relative_to(REPO_ROOT)}"
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(question)}(?![A-Za-z0-9_])")
    documented_on = [p for p in pages if pattern.search(p.read_text(encoding="utf-8"))]
    assert documented_on, (
        f"question {question!r} of copier.yml is not named on any page under docs/questions/: "
        "add a page (or a section) for it and list the page in mkdocs.yml"
    )
