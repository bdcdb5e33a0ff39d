"""Unit tests of the helpers that tier 2 relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import check_commands, interpreter_for

pytestmark = [pytest.mark.tier1, pytest.mark.fast]


def test_pre_commit_hooks_become_check_only_commands(tmp_path: Path) -> None:
    (tmp_path / ".pre-commit-config.yaml").write_text(
        """\
repos:
  - repo: local
    hooks:
      - {id: a, entry: uv run ruff check --fix, language: system}
      - {id: b, entry: uv run ruff format, language: system}
      - {id: c, entry: uv run mypy, language: system, pass_filenames: false}
      - {id: d, entry: uv run mypy, args: [--strict, src], language: system,
         pass_filenames: false}
""",
        encoding="utf-8",
    )
    assert check_commands(tmp_path, "/abs/uv") == [
        ["/abs/uv", "run", "ruff", "check", "."],
        ["/abs/uv", "run", "ruff", "format", "--check", "."],
        ["/abs/uv", "run", "mypy"],
        ["/abs/uv", "run", "mypy", "--strict", "src"],
    ]


def test_a_hook_tier_2_cannot_run_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".pre-commit-config.yaml").write_text(
        "repos:\n  - repo: https://github.com/x/y\n    rev: v1\n    hooks: [{id: z}]\n",
        encoding="utf-8",
    )
    with pytest.raises(AssertionError, match="tier 2 cannot run it"):
        check_commands(tmp_path, "/abs/uv")


def test_interpreters_are_real_files_not_shims() -> None:
    for version in ("3.11", "3.12", "3.13"):
        path = interpreter_for(version)
        if path is not None:
            assert "shims" not in path and Path(path).is_file()
            assert Path(path).name == f"python{version}"
