"""`copier copy` driven through a pseudo-terminal at 80 columns, as a user sees it.

* The prompt renders exactly what the API renders; every help text and choice label reads
  whole on one screen line; the next steps are printed after the render (the API stays quiet).
* Every refused choice the enumeration knows is shown disabled with its reason and cannot be
  picked with the arrow keys; interrupting at the next prompt writes nothing.

The driver walks copier.yml (via combinations.AnswerSpace), so a new question is answered
without touching this test. The screen is emulated with pyte: prompt_toolkit redraws with
cursor moves, so only an emulated screen shows what the user reads.
"""

from __future__ import annotations

import io
import os
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jinja2.meta
import pexpect
import pyte
import pytest
import yaml
from combinations import MISSING, AnswerSpace, Question, Refusal, answer_space
from copier import run_copy
from helpers import read_tree

pytestmark = [
    pytest.mark.tier1,
    # pexpect forks a pty from the threaded xdist worker; the child execs at once.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

# Free-text answers typed at the prompt; other free-text questions keep their (computed)
# default, which checks that defaults follow the typed answers the same way in both paths.
TYPED = {
    "project_name": "Billing Gateway",
    "description": "Bills customers once per order.",
    "author_name": "Payments Team",
}
DOWN, ENTER, CLEAR_LINE, CTRL_C = "\x1b[B", "\r", "\x15", "\x03"
ROWS, COLUMNS = 50, 80
TIMEOUT = 60
# Waiting for text that never comes (a cut help line) fails after this, not after TIMEOUT.
SCREEN_TIMEOUT = 15


class Terminal:
    """`copier copy` in a pty of ROWS x COLUMNS, its output fed to an emulated screen."""

    def __init__(self, src: Path, dst: Path) -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.Stream(self.screen)
        self.transcript = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "copier", "copy", str(src), str(dst)],
            # No cursor-position requests: nobody answers them in a pty, each would wait 1 s.
            env={**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
            dimensions=(ROWS, COLUMNS),
            encoding="utf-8",
            timeout=TIMEOUT,
        )
        self.eof = False

    def _pump(self, wait: float) -> None:
        try:
            data = self.child.read_nonblocking(65536, timeout=wait)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.eof = True
            return
        self.transcript.write(data)
        self.stream.feed(data)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def wait_for(self, found: Callable[[list[str]], bool], what: str) -> None:
        deadline = time.monotonic() + SCREEN_TIMEOUT
        while not found(self.lines()):
            if self.eof or time.monotonic() > deadline:
                pytest.fail(f"not on the {COLUMNS}-column screen: {what}\n{self.dump()}")
            self._pump(0.1)

    def wait_for_line(self, text: str, what: str, below: str = "") -> None:
        """Wait until ``text`` appears whole within one screen line (below the last line
        that contains ``below``, if given)."""

        def found(lines: list[str]) -> bool:
            if below:
                starts = [i for i, line in enumerate(lines) if below in line]
                lines = lines[starts[-1] + 1 :] if starts else []
            return any(text in line for line in lines)

        self.wait_for(found, f"{what}: {text!r}")

    def wait_eof(self) -> int:
        deadline = time.monotonic() + TIMEOUT * 2
        while not self.eof:
            if time.monotonic() > deadline:
                pytest.fail(f"copier did not exit\n{self.dump()}")
            self._pump(0.5)
        self.child.close()
        return self.child.exitstatus if self.child.exitstatus is not None else -1

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def dump(self) -> str:
        return "\n".join(line for line in self.lines() if line) or _plain(self.transcript)


def help_text(space: AnswerSpace, q: Question, answers: dict[str, Any]) -> str:
    """The help Copier prints for a question (one line), else its name."""
    return str(space.render(q.spec.get("help", ""), answers)).strip() or q.name


def labels(space: AnswerSpace, q: Question, answers: dict[str, Any]) -> list[tuple[Any, str, str]]:
    """(value, rendered label, disabled reason) of a choice question, in menu order."""
    choices = q.spec["choices"]
    titles = list(choices) if isinstance(choices, dict) else [str(c) for c in choices]
    return [
        (value, str(space.render(title, answers)), reason)
        for title, (value, reason) in zip(titles, space.choices(q, answers), strict=True)
    ]


def menu_line(label: str, reason: str) -> str:
    """How questionary shows a choice: a disabled one as "- label (reason)"."""
    return f"- {label} ({reason})" if reason else label


def answer(
    term: Terminal, space: AnswerSpace, q: Question, answers: dict[str, Any], value: Any
) -> None:
    """Wait for the question (its help and labels whole on screen), then answer ``value``."""
    help = help_text(space, q, answers)
    term.wait_for_line(help, f"help of {q.name}")
    default = space.default(q, answers)
    if "choices" in q.spec:
        menu = labels(space, q, answers)
        for _, label, reason in menu:
            term.wait_for_line(menu_line(label, reason), f"choice of {q.name}", below=help)
        values = [v for v, _, _ in menu]
        term.send(DOWN * ((values.index(value) - values.index(default)) % len(values)) + ENTER)
    elif q.type_name == "bool":
        term.send("y" if value else "n")  # a confirm prompt submits on y/n
    elif value != default or "default" not in q.spec:
        term.send(CLEAR_LINE + str(value) + ENTER)  # a required question shows no default
    else:
        term.send(ENTER)


def test_interactive_copy_matches_api_render(
    template_copy: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Every choice question gets its first offered non-default value, every bool the
    opposite of its default; the prompt reads whole at 80 columns and prints next steps."""
    space = AnswerSpace(template_copy / "copier.yml")
    interactive, api = tmp_path / "interactive", tmp_path / "api"
    term = Terminal(template_copy, interactive)
    answers: dict[str, Any] = {}
    data: dict[str, Any] = {}
    try:
        for q in space.questions:
            default = space.default(q, answers)
            if not space.is_asked(q, answers):
                if default is not MISSING:
                    answers[q.name] = default
                continue
            if "choices" in q.spec:
                offered = [v for v, disabled in space.choices(q, answers) if not disabled]
                value = next((v for v in offered if v != default), default)
            elif q.type_name == "bool":
                value = not default
            else:
                value = TYPED.get(q.name, default)
            answer(term, space, q, answers, value)
            answers[q.name] = data[q.name] = value
        status = term.wait_eof()
    finally:
        term.child.close(force=True)
    assert status == 0, term.dump()
    assert any(v != space.default_answers().get(k) for k, v in data.items() if k not in TYPED)
    # The next steps, with the real package name, whole on screen.
    for line in (
        f"Next steps for {answers['project_name']} (README.md has the details):",
        f"uv run python -m {answers['package_name']}",
        "uv run pytest -m fast",
        "bash scripts/template-update.sh",
    ):
        term.wait_for_line(line, "message after copy")

    capfd.readouterr()
    run_copy(str(template_copy), str(api), data=data, defaults=True, unsafe=False, quiet=True)
    printed = capfd.readouterr()
    assert "Next steps" not in printed.out + printed.err, "the quiet API render printed"
    got, expected = read_tree(interactive), read_tree(api)
    assert sorted(got) == sorted(expected)
    differing = [path for path in expected if got[path] != expected[path]]
    assert not differing, f"differ between interactive and API renders: {differing}"


# --- Refused choices ----------------------------------------------------------------------


def depends_on(space: AnswerSpace, refusal: Refusal) -> tuple[str, ...]:
    """Earlier questions the refused choice's validator reads (its Jinja variables)."""
    q = next(q for q in space.questions if q.name == refusal.question)
    choices = q.spec["choices"]
    specs = choices.values() if isinstance(choices, dict) else choices
    own = [s for s in specs if isinstance(s, dict) and s["value"] == refusal.value]
    # A choice's own validator, else (a refusal the menu does not know) the question's.
    validator = own[0]["validator"] if own else q.spec["validator"]
    names = jinja2.meta.find_undeclared_variables(space.env.parse(validator))
    return tuple(sorted(names & set(refusal.data)))


def distinct_refused_choices(space: AnswerSpace) -> list[Refusal]:
    """One refusal per (question, choice, answers its validator depends on)."""
    distinct: dict[tuple[Any, ...], Refusal] = {}
    for r in space.refusals:
        key = (r.question, r.value, *((n, r.data[n]) for n in depends_on(space, r)))
        distinct.setdefault(key, r)
    return list(distinct.values())


REFUSED = distinct_refused_choices(answer_space())


def pick_refused_choice(src: Path, dst: Path, refusal: Refusal) -> tuple[str, int, str]:
    """Answer up to the refused question, press DOWN until the refused choice and ENTER,
    then interrupt at the next prompt. Returns (answer shown, exit status, screen)."""
    space = AnswerSpace(src / "copier.yml")
    term = Terminal(src, dst)
    answers: dict[str, Any] = {}
    try:
        for q in space.questions:
            if not space.is_asked(q, answers):
                if (default := space.default(q, answers)) is not MISSING:
                    answers[q.name] = default
                continue
            if q.name == refusal.question:
                break
            answer(term, space, q, answers, refusal.data[q.name])
            answers[q.name] = refusal.data[q.name]
        else:
            pytest.fail(f"{refusal.question} was never asked")
        menu = labels(space, q, answers)
        refused = next(label for value, label, _ in menu if value == refusal.value)
        help = help_text(space, q, answers)
        # The refused choice is shown disabled, with the reason, whole on one line.
        term.wait_for_line(menu_line(refused, refusal.message), "disabled choice", below=help)
        answer(term, space, q, answers, refusal.value)
        term.wait_for_line(next_help(space, q, answers), "the next question")
        lines = term.lines()
        asked = next(i for i, line in enumerate(lines) if help_text(space, q, answers) in line)
        shown = lines[asked + 1].strip()
        term.send(CTRL_C)
        status = term.wait_eof()
    finally:
        term.child.close(force=True)
    return shown, status, term.dump()


def next_help(space: AnswerSpace, asked: Question, answers: dict[str, Any]) -> str:
    """Help of the question Copier asks after ``asked`` (whichever answer it got)."""
    context = dict(answers)
    for q in space.questions[space.questions.index(asked) + 1 :]:
        if space.is_asked(q, context):
            return help_text(space, q, context)
        if (default := space.default(q, context)) is not MISSING:
            context[q.name] = default
    pytest.fail(f"no question after {asked.name}: nothing to interrupt")


def test_every_refused_choice_is_disabled_in_the_menu(template_copy: Path, tmp_path: Path) -> None:
    space = AnswerSpace(template_copy / "copier.yml")
    assert REFUSED, "the enumeration knows no refused choice"
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1)) as pool:
        results = list(
            pool.map(
                lambda ir: pick_refused_choice(template_copy, tmp_path / f"d{ir[0]}", ir[1]),
                enumerate(REFUSED),
            )
        )
    seconds = time.perf_counter() - start
    print(f"{len(REFUSED)} refused choices driven through the prompt in {seconds:.1f} s")
    for i, (refusal, (shown, status, screen)) in enumerate(zip(REFUSED, results, strict=True)):
        q = next(q for q in space.questions if q.name == refusal.question)
        context = {k: v for k, v in space.answers_with(refusal.data).items() if k != q.name}
        menu = labels(space, q, context)
        refused = next(label for value, label, _ in menu if value == refusal.value)
        allowed = [label for _, label, reason in menu if not reason]
        assert shown != refused and shown in allowed, f"{refusal.id}: picked {shown!r}\n{screen}"
        assert status != 0, f"{refusal.id}: exit status 0 after Ctrl-C"
        dst = tmp_path / f"d{i}"
        assert not dst.exists() or not any(dst.iterdir()), f"{refusal.id}: files written"


def test_refused_pairs_cover_every_refusal() -> None:
    """The distinct pairs stand for all refusals: same question, choice and message."""
    space = answer_space()
    for r in space.refusals:
        assert r.kind == "choice", f"{r.id}: refused by a validator the menu does not run"
    keys = {(r.question, r.value, r.message) for r in REFUSED}
    assert {(r.question, r.value, r.message) for r in space.refusals} == keys
    assert len(REFUSED) < len(space.refusals)


# --- Static checks of what the prompt shows ------------------------------------------------


def test_help_texts_and_labels_fit_80_columns() -> None:
    """Every help is one line and fits beside the prompt mark; every menu line fits; no
    placeholder such as `<package>` stands in for an answer. Checked in every context."""
    raw = yaml.safe_load((Path(__file__).parent.parent / "copier.yml").read_text())
    for name, spec in raw.items():
        if isinstance(spec, dict):
            texts = [str(spec.get("help", "")), *map(str, spec.get("choices") or [])]
            assert not any(re.search(r"<[a-z_]+>", t) for t in texts), name
    space = answer_space()
    seen: set[str] = set()
    for c in space.combinations:
        answers: dict[str, Any] = {}
        for q in space.questions:
            if space.is_asked(q, answers) and "help" in q.spec:
                text = help_text(space, q, answers)
                assert "\n" not in text and len(text) <= COLUMNS - 4, f"{q.name}: {text!r}"
                if "choices" in q.spec:
                    for _, label, reason in labels(space, q, answers):
                        line = menu_line(label, reason)
                        if line not in seen:
                            seen.add(line)
                            assert len(line) <= COLUMNS - 4, f"{q.name}: {line!r}"
            answers[q.name] = c.answers[q.name]


def test_computed_defaults_are_never_refused() -> None:
    """In every context the enumeration reaches, a question's default is an offered choice
    that its validator accepts (--defaults and ENTER never land on a refusal)."""
    space = answer_space()
    contexts = {
        (q.name, tuple(sorted((k, repr(v)) for k, v in before.items()))): (q, before)
        for c in space.combinations
        for i, q in enumerate(space.questions)
        if "choices" in q.spec
        for before in [{p.name: c.answers[p.name] for p in space.questions[:i]}]
    }
    for q, before in contexts.values():
        default = space.default(q, before)
        offered = [v for v, disabled in space.choices(q, before) if not disabled]
        assert default in offered, f"{q.name} defaults to refused {default!r} after {before}"
        assert not space._validate(q, default, before), f"{q.name}: {default!r} after {before}"


def _plain(transcript: io.StringIO) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", transcript.getvalue())[-4000:]


def test_next_steps_messages_fit_80_columns() -> None:
    """Both messages render, name the real package and the update script, and every line but
    the `cd <destination>` one fits 80 columns (the copy message is checked on screen above)."""
    space = answer_space()
    answers = dict(space.default_combination().answers)
    context = {**answers, "_copier_conf": {"dst_path": "../order-service"}}
    for key in ("_message_after_copy", "_message_after_update"):
        text = str(space.render(space.settings[key], context))
        assert "uv run pytest -m fast" in text and "scripts/template-update.sh" in text, key
        long = [line for line in text.splitlines() if len(line) > COLUMNS and "cd " not in line]
        assert not long, f"{key}: {long}"
    copy = str(space.render(space.settings["_message_after_copy"], context))
    assert f"uv run python -m {answers['package_name']}" in copy
    assert "cd ../order-service" in copy
