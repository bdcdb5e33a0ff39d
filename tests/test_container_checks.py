"""The container checks of tier 1 can fail: the rendered default Dockerfile and .dockerignore
pass them, and each deliberate defect, made by editing the rendered files, is reported."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from combinations import AnswerSpace, default_combination
from container_checks import (
    dockerfile_problems,
    dockerignore_problems,
    dockerignore_rules,
    hadolint_problems,
    is_excluded,
)
from static_checks import run_static_checks

pytestmark = [pytest.mark.tier1, pytest.mark.fast]

DEFAULT = default_combination()
PYTHON = str(DEFAULT.answers["python_version"])
PACKAGE = str(DEFAULT.answers["package_name"])
HEALTHCHECK = re.compile(r"^HEALTHCHECK .*?\]\n", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def rendered(renderer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return renderer(DEFAULT.data, tmp_path_factory.mktemp("container-checks") / "project")


@pytest.fixture(scope="module")
def dockerfile(rendered: Path) -> str:
    return (rendered / "Dockerfile").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def dockerignore(rendered: Path) -> str:
    return (rendered / ".dockerignore").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Defect:
    id: str
    edit: Callable[[str], str]
    expected: str  # text of the problem that must be reported


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"the rendered file no longer contains {old!r}: update this test"
        return text.replace(old, new)

    return edit


def healthcheck(new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert HEALTHCHECK.search(text), "no HEALTHCHECK in the rendered Dockerfile"
        return HEALTHCHECK.sub(new, text)

    return edit


def runtime_stage_only(text: str) -> str:
    args = text[: text.index("FROM ")]
    return args + text[text.index("FROM ${PYTHON_IMAGE} AS runtime") :]


ENTRY = f'ENTRYPOINT ["python", "-m", "{PACKAGE}"]'
VENV_COPY = "COPY --from=builder /app/.venv /app/.venv"
FINAL_SYNC = "uv sync --locked --no-dev --no-editable"
IMAGE_ARG = re.compile(r"(ARG PYTHON_IMAGE=python:[\d.]+-slim)@sha256:[0-9a-f]{64}")

DEFECTS = [
    Defect("tag-only", lambda t: IMAGE_ARG.sub(r"\1", t), "is not pinned by digest"),
    Defect(
        "stage-base",
        replace("FROM ${PYTHON_IMAGE} AS runtime", "FROM debian:trixie-slim AS runtime"),
        "does not use the base image argument",
    ),
    Defect("single-stage", runtime_stage_only, "not a multi-stage build"),
    Defect("unlocked", replace(FINAL_SYNC, "uv sync --no-dev --no-editable"), "without --locked"),
    Defect("dev-deps", replace(FINAL_SYNC, "uv sync --locked --no-editable"), "without --no-dev"),
    Defect("editable", replace(FINAL_SYNC, "uv sync --locked --no-dev"), "without --no-editable"),
    Defect(
        "no-bytecode",
        replace("UV_COMPILE_BYTECODE=1", "UV_COMPILE_BYTECODE=0"),
        "bytecode is not compiled",
    ),
    Defect(
        "no-lock",
        replace("COPY pyproject.toml uv.lock ./", "COPY pyproject.toml ./"),
        "uv.lock is not copied",
    ),
    Defect(
        "whole-context", replace("COPY src ./src", "COPY . ./"), "copies '.' from the build context"
    ),
    Defect(
        "runtime-copies-app",
        replace(VENV_COPY, "COPY --from=builder /app /app"),
        "which is not the virtual environment",
    ),
    Defect(
        "runtime-copies-uv",
        replace(VENV_COPY, f"{VENV_COPY}\nCOPY --from=builder /usr/local/bin/uv /usr/local/bin/"),
        "'/usr/local/bin/uv', which is not the virtual environment",
    ),
    Defect(
        "runtime-from-context",
        replace(VENV_COPY, "COPY src /app/src"),
        "the runtime stage copies from the build context",
    ),
    Defect(
        "runtime-installs",
        replace("--shell /usr/sbin/nologin app", "--shell /usr/sbin/nologin app && pip install x"),
        "runs a build tool or installer ('pip')",
    ),
    Defect("named-user", replace("USER 10001:10001", "USER app"), "is not numeric"),
    Defect("root-user", replace("USER 10001:10001", "USER 0:0"), "is root"),
    Defect("no-user", replace("USER 10001:10001\n", ""), "sets no USER"),
    Defect("shell-form", replace(ENTRY, f"ENTRYPOINT python -m {PACKAGE}"), "shell form"),
    Defect(
        "uv-run",
        replace(ENTRY, f'ENTRYPOINT ["uv", "run", "python", "-m", "{PACKAGE}"]'),
        "runs through uv",
    ),
    Defect(
        "shell-wrapper",
        replace(ENTRY, f'ENTRYPOINT ["sh", "-c", "exec python -m {PACKAGE} \\"$@\\"", "--"]'),
        "is not `python -m <package>`",
    ),
    Defect(
        "no-command",
        lambda t: replace('CMD ["serve"]\n', "")(replace(f"{ENTRY}\n", "")(t)),
        "neither ENTRYPOINT nor CMD",
    ),
    Defect("no-healthcheck", healthcheck(""), "no HEALTHCHECK"),
    Defect("healthcheck-none", healthcheck("HEALTHCHECK NONE\n"), "HEALTHCHECK NONE"),
    Defect(
        "healthcheck-shell",
        healthcheck("HEALTHCHECK CMD python -c 'print(1)'\n"),
        "is not `CMD [...]` in exec form",
    ),
    Defect(
        "healthcheck-curl",
        healthcheck('HEALTHCHECK CMD ["curl", "-f", "http://127.0.0.1:8000/livez"]\n'),
        "slim images have no curl",
    ),
    Defect(
        "healthcheck-elsewhere",
        healthcheck('HEALTHCHECK CMD ["python", "-c", "print(1)"]\n'),
        "does not probe /livez",
    ),
    Defect("stop-signal", replace("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL"), "STOPSIGNAL"),
    Defect("host", replace("HOST=0.0.0.0", "HOST=127.0.0.1"), "ENV HOST=0.0.0.0"),
    Defect(
        "buffered", replace("PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=0"), "ENV PYTHONUNBUFFERED=1"
    ),
    Defect("port", replace("EXPOSE 8000", "EXPOSE 8080"), "ENV PORT=8000 is not EXPOSEd"),
    Defect(
        "remote-add",
        replace("WORKDIR /app\n\n", "WORKDIR /app\nADD https://example.com/tool.tgz /opt/\n\n"),
        "ADD of a remote URL 'https://example.com/tool.tgz'",
    ),
    Defect(
        "secret-env",
        replace("APP_ENV=production \\", "APP_ENV=production \\\n    SECRET_KEY=changeme \\"),
        "ENV SECRET_KEY looks like a secret",
    ),
    Defect(
        "secret-arg",
        replace("ARG UV_VERSION=", "ARG PYPI_TOKEN\nARG UV_VERSION="),
        "ARG PYPI_TOKEN looks like a secret",
    ),
]


def test_rendered_dockerfile_passes(dockerfile: str, rendered: Path) -> None:
    assert dockerfile_problems(dockerfile, PYTHON) == []
    assert hadolint_problems(str(rendered / "Dockerfile")) == []


@pytest.mark.parametrize("defect", DEFECTS, ids=lambda d: d.id)
def test_each_dockerfile_defect_is_reported(dockerfile: str, defect: Defect) -> None:
    problems = dockerfile_problems(defect.edit(dockerfile), PYTHON)
    assert any(defect.expected in p for p in problems), (
        f"{defect.id}: expected a problem containing {defect.expected!r}, got {problems}"
    )


def test_settings_that_name_a_place_are_not_secrets(dockerfile: str) -> None:
    edited = replace(
        "APP_ENV=production \\", "APP_ENV=production \\\n    SECRETS_DIR=/run/secrets \\"
    )(dockerfile)
    assert "SECRETS_DIR=/run/secrets" in edited
    assert dockerfile_problems(edited, PYTHON) == []


def test_base_image_must_match_the_python_version(dockerfile: str) -> None:
    other = "3.13" if PYTHON != "3.13" else "3.12"
    default = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", dockerfile)
    assert default, "no ARG PYTHON_IMAGE default"
    problems = dockerfile_problems(dockerfile, other)
    assert problems == [f"ARG PYTHON_IMAGE default {default.group(1)!r} is not python:{other}-slim"]


def test_hadolint_findings_are_reported(dockerfile: str, tmp_path: Path) -> None:
    pinned_pip = re.search(r"pip install [^\n]*\"uv==\$\{UV_VERSION\}\"", dockerfile)
    assert pinned_pip, "the rendered Dockerfile no longer installs uv with pip"
    bad = replace(pinned_pip.group(0), "pip install uv")(dockerfile)
    bad = replace("WORKDIR /app\n\n# Dependencies", "WORKDIR app\n\n# Dependencies")(bad)
    (tmp_path / "Dockerfile").write_text(bad, encoding="utf-8")
    problems = "\n".join(hadolint_problems(str(tmp_path / "Dockerfile")))
    for code in ("DL3013", "DL3042", "DL3000"):
        assert code in problems, f"hadolint did not report {code}:\n{problems}"


# --- .dockerignore ---------------------------------------------------------------------------


def test_rendered_dockerignore_passes(dockerignore: str) -> None:
    assert dockerignore_problems(dockerignore) == []


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["*\n"], ".env reaches the build context"),
        (["**/__pycache__\n", "**/*.py[cod]\n"], "__pycache__/main.cpython-312.pyc reaches"),
        (["**/*.py[cod]\n"], "src/app/main.pyc reaches"),
        (["!src\n"], "src/app/__init__.py is excluded"),
        (["!uv.lock\n"], "uv.lock is excluded"),
    ],
)
def test_each_dockerignore_defect_is_reported(
    dockerignore: str, lines: list[str], expected: str
) -> None:
    for line in lines:
        dockerignore = replace(line, "")(dockerignore)
    problems = dockerignore_problems(dockerignore)
    assert any(expected in p for p in problems), problems


def test_dockerignore_matching_follows_docker() -> None:
    """A denylist works too; the last matching rule wins; `**` spans directories; a rule on a
    directory covers what is inside it."""
    rules = dockerignore_rules(
        ".venv\n.git\n.env*\ntests/\n**/__pycache__\n*.py[cod]\n**/*.py[cod]\n"
        ".*_cache\n!.env.example\n"
    )
    assert is_excluded(rules, ".venv/lib/python3.12/site.py")
    assert is_excluded(rules, ".env.production")
    assert not is_excluded(rules, ".env.example")
    assert is_excluded(rules, "a/b/__pycache__/c.pyc")
    assert not is_excluded(rules, "src/app/main.py")
    assert not is_excluded(rules, "docs/tests.md")  # `tests/` is the top-level directory only
    assert is_excluded(rules, "tests/unit/test_x.py")
    assert (
        dockerignore_problems(".venv\n.git\n.env*\ntests\n**/__pycache__\n**/*.py[cod]\n.*_cache\n")
        == []
    )


# --- wiring into the tier-1 run --------------------------------------------------------------


COPIER_YML = """\
_subdirectory: template
variant:
  type: str
  choices: {Clean: clean, Dirty: dirty}
  default: clean
python_version:
  type: str
  choices: {"PY": "PY"}
  default: "PY"
"""


def test_tier1_runs_the_container_checks(
    dockerfile: str, dockerignore: str, tmp_path: Path
) -> None:
    """run_static_checks classifies Dockerfile and .dockerignore and reports their problems
    against the combination that rendered them."""
    shell_form = replace(ENTRY, f"ENTRYPOINT python -m {PACKAGE}")
    template = tmp_path / "template-src"
    (template / "template").mkdir(parents=True)
    (template / "copier.yml").write_text(COPIER_YML.replace("PY", PYTHON), encoding="utf-8")
    files = {
        "{{ _copier_conf.answers_file }}.jinja": "{{ _copier_answers | to_nice_yaml }}",
        # Jinja markers of the Dockerfile would be rendered: keep it out of Jinja's way.
        "{% if variant == 'clean' %}Dockerfile{% endif %}": dockerfile,
        "{% if variant == 'clean' %}.dockerignore{% endif %}": dockerignore,
        "{% if variant == 'dirty' %}Dockerfile{% endif %}": shell_form(dockerfile),
        "{% if variant == 'dirty' %}.dockerignore{% endif %}": "# nothing excluded\n",
    }
    for name, content in files.items():
        (template / "template" / name).write_text(content, encoding="utf-8")
    combos = {c.answers["variant"]: c for c in AnswerSpace(template / "copier.yml").combinations}
    report = run_static_checks(template, tmp_path / "out", list(combos.values()))
    assert report.problems[combos["clean"].id] == []
    dirty = "\n".join(report.problems[combos["dirty"].id])
    assert "Dockerfile: line" in dirty and "is in shell form" in dirty, dirty
    assert ".dockerignore: .env reaches the build context" in dirty, dirty
    kinds = report.stats["files_by_kind"]
    assert kinds["dockerfile"] == {"rendered": 2, "distinct": 2}, kinds
