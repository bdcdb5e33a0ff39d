"""Bad answers are refused by the `copier copy` CLI: non-zero exit, a message saying what is
allowed, and nothing left in the destination."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from combinations import AnswerSpace, Refusal, answer_space, make_jinja_env, refused_combinations
from copier import run_copy
from jinja2 import meta
from synthetic import SYNTHETIC, make_template

pytestmark = pytest.mark.tier1

VALID_NAME = {"project_name": "Order Service"}
JINJA = make_jinja_env()


@dataclass(frozen=True)
class Case:
    question: str
    value: Any
    hint: str  # words of the message that say what is allowed

    @property
    def id(self) -> str:
        return f"{self.question}={self.value}"[:40]


CASES = [
    *(Case("project_name", v, "2-50 characters") for v in ("1abc", "a", "x!y")),
    *(
        Case("project_slug", v, "lowercase letters, digits and single hyphens")
        for v in ("Bad_Slug", "-x", "a--b", "a" * 41)
    ),
    *(
        Case("package_name", v, "lowercase letters, digits and underscores")
        for v in ("1pkg", "Has-Dash")
    ),
    *(Case("package_name", v, "Python keyword") for v in ("import", "json", "threading", "redis")),
    Case("python_version", "2.7", "3.12"),
    Case("framework", "pyramid", "fastapi"),
    Case("cache_backend", "mongodb", "redis"),
    Case("storage_provider", "dropbox", "s3"),
    *(
        Case("author_email", v, "name@example.com")
        for v in ("not-an-email", "a@b", 'a"b@example.com', "a b@example.com")
    ),
    *(
        Case(question, v, "without double quotes or backslashes")
        for question in ("description", "author_name")
        for v in ('say "hi"', "back\\slash", " ")
    ),
    Case("framework_label", "Django", "computed from framework"),
    Case("store_family", "memcached", "computed from cache_backend"),
    Case("scheduler", "cron", "inprocess"),
    Case("lock_backend", "postgresql", "computed from scheduler and cache_backend"),
    Case("reserved_package_names", "[]", "fixed by the template"),
]


@dataclass
class CliResult:
    returncode: int
    output: str
    dst: Path


def copier_cli(src: Path, dst: Path, data: dict[str, Any]) -> CliResult:
    """`copier copy --defaults --data ...` through the CLI, as a user types it."""
    args = [sys.executable, "-m", "copier", "copy", "--defaults"]
    for key, value in data.items():
        args += ["--data", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    proc = subprocess.run(
        [*args, str(src), str(dst)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return CliResult(proc.returncode, proc.stdout + proc.stderr, dst)


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\x1b\[[0-9;]*m", "", text)).strip()


def assert_refused(result: CliResult, *expected: str) -> None:
    output = normalize(result.output)
    assert result.returncode != 0, f"accepted:\n{result.output}"
    for text in expected:
        assert normalize(text) in output, f"{text!r} not in the message:\n{result.output}"
    assert not result.dst.exists() or not any(result.dst.iterdir()), "destination not empty"


@pytest.fixture(scope="module")
def cli_results(template_copy: Path, tmp_path_factory: pytest.TempPathFactory):
    """All CLI runs at once (each pays ~1 s of start-up), in threads."""
    root = tmp_path_factory.mktemp("refusals")
    runs = {c.id: {**VALID_NAME, c.question: c.value} for c in CASES}
    runs |= {f"combo:{r.id}": dict(r.data) for r in first_refusal_per_question()}
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        futures = {
            key: pool.submit(copier_cli, template_copy, root / f"r{i}", data)
            for i, (key, data) in enumerate(runs.items())
        }
        return {key: f.result() for key, f in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_answer_is_refused(case: Case, cli_results) -> None:
    space = answer_space()
    spec = space.question(case.question)
    if "choices" in spec:
        allowed = space.choice_values(case.question, VALID_NAME)
        assert case.value not in allowed
        # Copier names the offered values: the message says what is allowed.
        expected = [f"Invalid choice for '{case.question}'", *(repr(v) for v in allowed)]
    else:
        message = space.validation_message(case.question, {**VALID_NAME, case.question: case.value})
        assert message, f"the validator of {case.question} accepts {case.value!r}"
        expected = [message]
    assert_refused(cli_results[case.id], *expected, case.hint)


# Impossible combinations of copier.yml (there may be none yet: the machinery is proven on
# synthetic templates in test_combinations.py).
REFUSALS = refused_combinations()


def first_refusal_per_question() -> list[Refusal]:
    firsts: dict[tuple[str, str], Refusal] = {}
    for r in REFUSALS:
        firsts.setdefault((r.question, r.kind), r)
    return list(firsts.values())


def spec_names(value: Any) -> set[str]:
    """Every name the Jinja in a question's spec reads: its help, choices and their validators,
    default, ``when`` and validator."""
    if isinstance(value, str):
        return set(meta.find_undeclared_variables(JINJA.parse(value))) if "{" in value else set()
    if isinstance(value, dict):
        return set().union(*(spec_names(k) | spec_names(v) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(spec_names(item) for item in value))
    return set()


def refusal_inputs(refusal: Refusal) -> tuple[Any, ...]:
    """What Copier's refusal depends on: the refused question, its value, and the answers its
    spec reads (computed ones included, with their values). Copier stops at the refused
    question before writing anything, so two refusals with the same inputs are refused alike."""
    space = answer_space()
    answers = space.answers_with(dict(refusal.data))
    names = sorted(spec_names(space.question(refusal.question)))
    read = tuple((name, repr(answers.get(name))) for name in names)
    return (refusal.question, refusal.kind, repr(refusal.value), read)


def checked_refusals() -> list[Refusal]:
    """One refusal per distinct set of inputs (the framework answer, for one, is read by no
    refused question): each is run through Copier; the others share its inputs."""
    firsts: dict[tuple[Any, ...], Refusal] = {}
    for refusal in REFUSALS:
        firsts.setdefault(refusal_inputs(refusal), refusal)
    return list(firsts.values())


def test_every_refusal_shares_its_inputs_with_a_checked_one() -> None:
    checked = {refusal_inputs(r): r for r in checked_refusals()}
    assert len(checked) < len(REFUSALS) or not REFUSALS
    for refusal in REFUSALS:
        representative = checked[refusal_inputs(refusal)]
        assert refusal.message == representative.message, (refusal.id, representative.id)


def test_refusal_inputs_tell_apart_what_the_refused_question_reads() -> None:
    """The inputs change with an answer the refused question reads and not with one it does
    not (the check that makes one Copier run stand for the others)."""
    scheduler = next(r for r in REFUSALS if r.question == "scheduler")
    for name, read in (("cache_backend", True), ("framework", False), ("tracing", False)):
        space = answer_space()
        current = space.answers_with(dict(scheduler.data)).get(name)
        if "choices" in space.question(name):
            values = [v for v in space.choice_values(name) if v != current]
        else:  # a yes/no question
            values = [not current]
        other = Refusal(
            scheduler.id, scheduler.question, scheduler.value, scheduler.message,
            {**scheduler.data, name: values[0]}, scheduler.kind,
        )  # fmt: skip
        assert (refusal_inputs(other) != refusal_inputs(scheduler)) == read, name


@pytest.mark.parametrize(
    "refusal", checked_refusals() or [None], ids=lambda r: r.id if r else "none"
)
def test_impossible_combination_is_refused(
    refusal: Refusal | None, template_copy: Path, tmp_path: Path
) -> None:
    if refusal is None:
        assert not REFUSALS
        return
    # In-process, once per distinct set of inputs; the CLI path is checked once per question.
    dst = tmp_path / "dst"
    data = dict(refusal.data)
    with pytest.raises(ValueError) as error:
        run_copy(str(template_copy), str(dst), data=data, defaults=True, unsafe=False, quiet=True)
    assert normalize(refusal.message) in normalize(str(error.value))
    assert not dst.exists() or not any(dst.iterdir())


@pytest.mark.parametrize(
    "refusal", first_refusal_per_question() or [None], ids=lambda r: r.id if r else "none"
)
def test_impossible_combination_is_refused_by_the_cli(refusal: Refusal | None, cli_results) -> None:
    if refusal is None:
        assert not REFUSALS
        return
    assert_refused(cli_results[f"combo:{refusal.id}"], refusal.message)


SCHEDULER_REFUSALS = [
    (
        {"scheduler": "cronjob", "deployment_target": "compose"},
        "Invalid choice for 'scheduler': needs the Kubernetes target",
    ),
    (
        {"scheduler": "celery", "cache_backend": "memcached", "database": "postgresql"},
        "Invalid choice for 'scheduler': needs Redis or Valkey",
    ),
    (
        {"scheduler": "inprocess", "cache_backend": "memcached", "database": "none"},
        "Invalid choice for 'scheduler': Memcached: needs PostgreSQL",
    ),
    (
        {"scheduler": "cronjob", "cache_backend": "memcached", "database": "none"},
        "Invalid choice for 'scheduler': Memcached: needs PostgreSQL",
    ),
]


@pytest.mark.parametrize(("answers", "message"), SCHEDULER_REFUSALS, ids=lambda v: str(v)[:60])
def test_unsafe_scheduler_combinations_are_refused(
    answers: dict[str, str], message: str, template_copy: Path, tmp_path: Path
) -> None:
    """Jobs without a safe lock, a CronJob without Kubernetes: refused with a message."""
    dst = tmp_path / "dst"
    data = {**VALID_NAME, **answers}
    with pytest.raises(ValueError) as error:
        run_copy(str(template_copy), str(dst), data=data, defaults=True, unsafe=False, quiet=True)
    assert normalize(message) in normalize(str(error.value))
    assert not dst.exists() or not any(dst.iterdir())
    # The enumerator sees the same refusal, so tier 1 never renders the combination.
    reason = message.removeprefix("Invalid choice for 'scheduler': ")
    assert any(r.kind == "choice" and r.message == reason for r in REFUSALS)


def test_cli_refusal_check_on_a_synthetic_refusal(tmp_path: Path) -> None:
    """The CLI assertions above on a template that has an impossible combination."""
    root = make_template(tmp_path / "tpl", SYNTHETIC)
    refusals = AnswerSpace(root / "copier.yml").refusals
    for r in [next(r for r in refusals if r.kind == k) for k in ("choice", "validator")]:
        assert_refused(copier_cli(root, tmp_path / r.id, dict(r.data)), r.message)
