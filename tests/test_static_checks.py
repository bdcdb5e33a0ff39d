"""The tier-1 checks themselves can fail: a synthetic template renders a clean tree and a
tree with one defect per check, and run_static_checks must flag exactly the defects."""

from __future__ import annotations

from pathlib import Path

import pytest
from combinations import AnswerSpace
from static_checks import SCRATCH_TMPFS, run_static_checks

pytestmark = [pytest.mark.tier1, pytest.mark.fast]

COPIER_YML = """\
_subdirectory: template
_envops:
  keep_trailing_newline: true
_exclude:
  - "{% if variant == 'clean' %}dirty{% else %}clean-only{% endif %}"
  - "{% if variant == 'dirty' %}src/helper.py{% endif %}"
variant:
  type: str
  choices: {Clean: clean, Dirty: dirty}
  default: clean
python_version:
  type: str
  choices: {"3.11": "3.11"}
  default: "3.11"
"""

CLEAN = {
    "{{ _copier_conf.answers_file }}.jinja": "{{ _copier_answers | to_nice_yaml }}",
    "pyproject.toml.jinja": (
        '[project]\nname = "x"\n\n[tool.ruff]\ntarget-version = "py{{ python_version'
        ' | replace(\'.\', \'\') }}"\n\n[tool.ruff.lint]\nselect = ["E", "F"]\n'
    ),
    "src/ok.py": 'def f() -> int:\n    return 1\n\n\nclass A:\n    """Two blank lines: fine."""\n',
    "src/__init__.py": "",
    # In both variants, but what it imports only in the clean one.
    "src/uses_helper.py": "from .helper import VALUE\n\nCOPY = VALUE\n",
    "src/helper.py": "VALUE = 1\n",
    ".pre-commit-config.yaml": "repos: []\n",
    ".github/workflows/ci.yml": "on: push\njobs:\n  a:\n    runs-on: ${{ matrix.os }}\n",
    "chart/Chart.yaml": "apiVersion: v2\nname: x\nversion: 0.1.0\n",
    "chart/templates/deploy.yaml": "{{- if .Values.x }}\nkind: {{ .Values.kind }}\n{{- end }}\n",
    "chart/templates/_helpers.tpl": '{{- define "x.name" -}}x{{- end }}\n',
    "clean-only/data.json": '{"a": 1}\n',
    "scripts/len.sh": 'echo "${#ARGS[@]}"\n',
}

# relative path -> (content, text the problem report must contain)
DIRTY = {
    "dirty/unused.py": ("import os\n", "F401"),
    "dirty/unformatted.py": ("x = [1,2]\n", "ruff format: dirty/unformatted.py"),
    "dirty/syntax.py": ("def f(:\n", "dirty/syntax.py: does not parse as py"),
    "dirty/py312.py": ("type X = int\n", "dirty/py312.py: does not parse as py"),
    "dirty/trailing.txt": ("a \n", "trailing whitespace on lines [1]"),
    "dirty/blank.txt": ("a\n\n\n\nb\n", "3 or more blank lines"),
    "dirty/no-newline.txt": ("a", "does not end with a newline"),
    "dirty/two-newlines.txt": ("a\n\n", "ends with more than one newline"),
    "dirty/residue.md": ("Hello {{ name }}\n", "Jinja residue '{{'"),
    "dirty/comment.md": ("{# left #}\n", "Jinja residue '{#'"),
    "dirty/bad.toml": ("a = \n", "dirty/bad.toml: does not parse as toml"),
    "dirty/bad.yaml": ("a: [\n", "dirty/bad.yaml: does not parse as yaml"),
    "dirty/bad.json": ("{\n", "dirty/bad.json: does not parse as json"),
    "dirty/kept.txt.jinja.jinja": ("x\n", "dirty/kept.txt.jinja: name ends with .jinja"),
    "dirty/templates/not-helm.yaml": ("a: {{ b }}\n", "dirty/templates/not-helm.yaml: Jinja"),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synthetic-static")
    (root / "copier.yml").write_text(COPIER_YML, encoding="utf-8")
    files = {**CLEAN, **{path: content for path, (content, _) in DIRTY.items()}}
    for rel, content in files.items():
        path = root / "template" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    combos = AnswerSpace(root / "copier.yml").combinations
    out = tmp_path_factory.mktemp("synthetic-static-out")
    return {c.answers["variant"]: c for c in combos}, run_static_checks(root, out, combos)


def test_clean_tree_passes(report) -> None:
    combos, result = report
    assert result.problems[combos["clean"].id] == []


def test_each_defect_is_reported(report) -> None:
    combos, result = report
    problems = "\n".join(result.problems[combos["dirty"].id])
    missing = [expected for _, expected in DIRTY.values() if expected not in problems]
    assert not missing, f"not reported: {missing}\nreport:\n{problems}"


def test_an_import_of_a_module_the_tree_lacks_is_reported(report) -> None:
    """Every file parses and passes ruff, but one answer's `_exclude` took away a module that
    a file of every combination imports."""
    combos, result = report
    missing = "src/uses_helper.py: imports .helper, which this tree does not hold"
    assert missing in result.problems[combos["dirty"].id]
    assert not any("imports" in p for p in result.problems[combos["clean"].id])


def test_only_the_failing_tree_is_kept_for_inspection(report) -> None:
    """The scratch trees (on a tmpfs when there is one) are gone after the run; the failing
    combination's tree is kept under the run's own directory, where its failure points."""
    combos, result = report
    dirty, clean = result.trees[combos["dirty"].id], result.trees[combos["clean"].id]
    assert (dirty / "src/uses_helper.py").is_file()
    assert not clean.exists()
    assert dirty.parent.name.startswith("synthetic-static-out")
    scratch = Path(result.stats["scratch"])
    assert scratch == dirty.parent or not scratch.exists()
    assert scratch.parent == SCRATCH_TMPFS or not SCRATCH_TMPFS.is_dir()


def test_identical_files_are_checked_once(report) -> None:
    _, result = report
    stats = result.stats
    assert stats["combinations"] == 2
    assert stats["distinct_files"] < stats["files_rendered"]


def test_missing_answers_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "copier.yml").write_text("_subdirectory: template\nx: 1\n", encoding="utf-8")
    (tmp_path / "template").mkdir()
    (tmp_path / "template" / "README.md").write_text("hi\n", encoding="utf-8")
    combos = AnswerSpace(tmp_path / "copier.yml").combinations
    result = run_static_checks(tmp_path, tmp_path / "out", combos)
    assert result.problems[combos[0].id] == [".copier-answers.yml is missing"]


def _two_variant_template(root: Path, files: dict[str, str]) -> list:
    (root / "copier.yml").write_text(
        "_subdirectory: template\n_templates_suffix: .jinja\n"
        "variant:\n  type: str\n  choices: [a, b]\n  default: a\n",
        encoding="utf-8",
    )
    answers = {"{{ _copier_conf.answers_file }}.jinja": "{{ _copier_answers | to_nice_yaml }}"}
    files = {**answers, **files}
    for rel, content in files.items():
        path = root / "template" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return AnswerSpace(root / "copier.yml").combinations


def test_a_file_ruff_checks_in_one_tree_fails_every_tree_that_holds_it(tmp_path: Path) -> None:
    """ruff sees each distinct file once: the trees differ (one has another file), the unused
    import is the same file in the same setting, so ruff checks one tree (the one holding every
    file) and both combinations fail."""
    combos = _two_variant_template(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "x"\n\n[tool.ruff.lint]\nselect = ["F"]\n',
            "src/shared.py": "import os\n",
            "src/{% if variant == 'a' %}extra.py{% endif %}": "VALUE = 1\n",
        },
    )
    result = run_static_checks(tmp_path, tmp_path / "out", combos)
    assert result.stats["ruff_shapes_distinct"] == 2
    assert result.stats["ruff_shapes"] == 1
    for combo in combos:
        assert any("src/shared.py:1: F401" in p for p in result.problems[combo.id]), combo.id


def test_a_file_in_another_ruff_setting_is_checked_again(tmp_path: Path) -> None:
    """The same file under a configuration that selects other rules is a different key: only
    the tree whose configuration selects F401 fails."""
    combos = _two_variant_template(
        tmp_path,
        {
            "pyproject.toml.jinja": (
                '[project]\nname = "x"\n\n[tool.ruff.lint]\n'
                'select = ["{{ "F" if variant == "a" else "E" }}"]\n'
            ),
            "src/shared.py": "import os\n",
        },
    )
    result = run_static_checks(tmp_path, tmp_path / "out", combos)
    assert result.stats["ruff_shapes"] == 2
    problems = {c.answers["variant"]: "\n".join(result.problems[c.id]) for c in combos}
    flagged = {variant for variant, found in problems.items() if "F401" in found}
    assert flagged == {"a"}
