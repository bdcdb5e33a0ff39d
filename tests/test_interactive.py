"""`copier copy` driven through a pseudo-terminal renders exactly what the API renders.

The driver walks copier.yml (via combinations.AnswerSpace), so a new question is answered
without touching this test: text answers are typed, every choice question gets its first
offered non-default value (arrow keys), every bool the opposite of its default.
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import Any

import pexpect
import pytest
from combinations import MISSING, AnswerSpace, Question
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
DOWN, UP, ENTER, CLEAR_LINE = "\x1b[B", "\x1b[A", "\r", "\x15"
TIMEOUT = 60


def prompt_text(space: AnswerSpace, q: Question, answers: dict[str, Any]) -> str:
    """What Copier prints for a question: its help text if any, else its name."""
    text = str(space.render(q.spec.get("help", ""), answers)).strip()
    return " ".join(text.split())[:40] if text else q.name


def drive(child: pexpect.spawn, space: AnswerSpace) -> dict[str, Any]:
    """Answer every question Copier asks; return the answers to pass as data to the API."""
    answers: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for q in space.questions:
        default = space.default(q, answers)
        if not space.is_asked(q, answers):
            if default is not MISSING:
                answers[q.name] = default
            continue
        child.expect_exact(prompt_text(space, q, answers))
        if "choices" in q.spec:
            offered = [v for v, disabled in space.choices(q, answers) if not disabled]
            value = next((v for v in offered if v != default), default)
            moves = offered.index(value) - offered.index(default)
            child.send((DOWN if moves > 0 else UP) * abs(moves) + ENTER)
            data[q.name] = value
        elif q.type_name == "bool":
            value = not default
            child.send("y" if value else "n")  # a confirm prompt submits on y/n
            data[q.name] = value
        elif q.name in TYPED or "default" not in q.spec:
            value = TYPED.get(q.name, default)  # a required question shows no default
            child.send(CLEAR_LINE + str(value) + ENTER)
            data[q.name] = value
        else:
            value = default
            child.send(ENTER)
        answers[q.name] = value
    return data


def test_interactive_copy_matches_api_render(template_copy: Path, tmp_path: Path) -> None:
    space = AnswerSpace(template_copy / "copier.yml")
    interactive, api = tmp_path / "interactive", tmp_path / "api"
    transcript = io.StringIO()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "copier", "copy", str(template_copy), str(interactive)],
        # No cursor-position requests: nobody answers them in a pty, each would wait 1 s.
        env={**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
        dimensions=(50, 200),
        encoding="utf-8",
        timeout=TIMEOUT,
    )
    child.logfile_read = transcript
    try:
        data = drive(child, space)
        child.expect(pexpect.EOF, timeout=TIMEOUT * 2)
    except pexpect.ExceptionPexpect as error:
        pytest.fail(f"{type(error).__name__} while driving copier:\n{_plain(transcript)}")
    finally:
        child.close()
    assert child.exitstatus == 0, _plain(transcript)
    assert any(v != space.default_answers().get(k) for k, v in data.items() if k not in TYPED)

    run_copy(str(template_copy), str(api), data=data, defaults=True, unsafe=False, quiet=True)
    got, expected = read_tree(interactive), read_tree(api)
    assert sorted(got) == sorted(expected)
    differing = [path for path in expected if got[path] != expected[path]]
    assert not differing, f"differ between interactive and API renders: {differing}"


def _plain(transcript: io.StringIO) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", transcript.getvalue())[-4000:]
