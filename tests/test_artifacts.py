"""The distinct-artifact renderer (artifacts.py) on a synthetic template: dependencies come
from the template's AST, assembled trees equal plain Copier renders, and the equivalence
check catches a dependency the analysis misses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from artifacts import (
    CHANNELS,
    ExcludeMatcher,
    TemplateAnalysis,
    Unsupported,
    plain_renders,
    render_artifacts,
    tree_differences,
)
from combinations import AnswerSpace
from synthetic import SYNTHETIC, make_template

pytestmark = [pytest.mark.tier1, pytest.mark.fast]

EXCLUDE = '_exclude:\n  - "{% if not tracing %}tracing.txt{% endif %}"\n'
FILES = {
    # A dependency reached only through an include of a file outside the subdirectory.
    "partials/db.txt": "db is {{ db }}\n",
    "template/included.txt.jinja": "{% include 'partials/db.txt' %}",
    # Through {% set %} and a filter.
    "template/set.txt.jinja": "{% set d = deploy %}{{ d | upper }}\n",
    # Selected by an _exclude rule.
    "template/tracing.txt": "on\n",
    # In the path.
    "template/{{ slug }}.txt": "named\n",
    "template/static.txt": "same for all\n",
}
# The file a blind spot in each analysis channel gets wrong.
HIDDEN_IN = {
    "includes": "included.txt",
    "copier_answers": ".copier-answers.yml",
    "exclude": "tracing.txt",
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any], dict[str, Path]]:
    """The template, a sample that varies every hidden answer, and its plain Copier renders."""
    root = make_template(tmp_path_factory.mktemp("artifacts") / "tpl", EXCLUDE + SYNTHETIC)
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    combos = AnswerSpace(root / "copier.yml").combinations
    first = combos[0]
    chosen = [first] + [
        next(c for c in combos if c.answers[name] != first.answers[name])
        for name in ("db", "tracing", "deploy")
    ]
    plain = plain_renders(root, chosen, tmp_path_factory.mktemp("plain"))
    return root, chosen, plain


def differences(src: Path, combos: list[Any], plain: dict[str, Path], blind=()) -> list[str]:
    _, arts = render_artifacts(src, combos, blind=blind)
    return [f"{c.id}: {d}" for c in combos for d in tree_differences(arts, c.id, plain[c.id])]


def test_dependencies_come_from_the_templates(synthetic) -> None:
    src, _, _ = synthetic
    entries = {e.src: e for e in TemplateAnalysis(src).entries}
    assert entries["included.txt.jinja"].content_names == ("db",)
    assert entries["set.txt.jinja"].content_names == ("deploy",)
    assert entries["{{ slug }}.txt"].path_names == ("slug",)
    assert entries["static.txt"].content_names == ()
    assert entries["{{ _copier_conf.answers_file }}.jinja"].content_names == ("_copier_answers",)


def test_assembled_trees_equal_plain_copier_renders(synthetic) -> None:
    src, combos, plain = synthetic
    assert differences(src, combos, plain) == []


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_equivalence_check_catches_a_hidden_dependency(synthetic, channel: str) -> None:
    """With one analysis channel switched off, a dependency is hidden from the renderer:
    comparing with plain Copier renders must name the file it gets wrong."""
    src, combos, plain = synthetic
    found = differences(src, combos, plain, blind={channel})
    assert any(HIDDEN_IN[channel] in d for d in found), found


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% include 'partials/' ~ 'db.txt' %}", "computed name"),
        ("{{ _folder_name }}", "_folder_name"),
        ("{{ _copier_conf.dst_path }}", "_copier_conf"),
    ],
)
def test_what_the_analysis_cannot_follow_is_refused(
    tmp_path: Path, source: str, message: str
) -> None:
    root = make_template(tmp_path / "tpl", SYNTHETIC)
    (root / "partials").mkdir()
    (root / "partials/db.txt").write_text("{{ db }}\n", encoding="utf-8")
    (root / "template/odd.txt.jinja").write_text(source, encoding="utf-8")
    with pytest.raises(Unsupported, match=message):
        TemplateAnalysis(root)


@pytest.mark.parametrize(
    "lines",
    [
        ("deploy/helm", "src/pkg/db", "*.pyc", "", ".gitlab-ci.yml"),
        ("docs", "!docs/keep.md", "src/pkg/db"),  # a negation: the whole matcher decides
    ],
)
def test_exclude_matcher_agrees_with_copiers_pathspec(lines: tuple[str, ...]) -> None:
    """The per-pattern verdicts shared between matchers decide as Copier's own matcher does."""
    from copier._main import _pathspec_pattern
    from pathspec import PathSpec

    paths = [
        "deploy/helm/x/values.yaml",
        "deploy/compose/haproxy.cfg",
        "src/pkg/db",
        "src/pkg/db/engine.py",
        "src/pkg/dbx.py",
        "a/b.pyc",
        ".gitlab-ci.yml",
        "docs/keep.md",
        "docs/other.md",
    ]
    copier_spec = PathSpec.from_lines(_pathspec_pattern, lines)
    shared: dict[tuple[str, str], bool] = {}
    for matcher in (ExcludeMatcher(lines, shared), ExcludeMatcher(lines, shared)):
        assert {p: matcher.excluded(p) for p in paths} == {
            p: bool(copier_spec.match_file(p)) for p in paths
        }
