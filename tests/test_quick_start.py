"""One quick start everywhere: every Copier command the README and the docs give is run the same
way, through uv with the Copier version the template is tested with.

Stock Debian/Ubuntu Pythons refuse `pip install` (PEP 668, `externally-managed-environment`), and
an unpinned `uvx copier` drifts to whatever Copier is newest; either breaks a new user's first
minutes. tests/test_tier4_update.py runs the README's quick start itself.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from helpers import REPO_ROOT
from packaging.version import Version

pytestmark = [pytest.mark.tier1, pytest.mark.fast]

SUBCOMMAND = r"copier\s+(?:copy|update|check-update|recopy)\b"
# Ways of getting Copier that the quick start replaced, and unpinned uvx.
FORBIDDEN = {
    "pip install of copier": r"\bpip3?\s+install\b[^\n`]*\bcopier\b",
    "pipx of copier": r"\bpipx\s+(?:install|run)\b[^\n`]*\bcopier\b",
    "python -m copier": r"\bpython3?\s+-m\s+copier\b",
    "unpinned uvx copier": r"\buvx\s+copier\b",
    "uvx with another copier": r"\buvx\s+--from\s+['\"]?copier(?!==)",
}


def pinned_copier() -> str:
    """The Copier the template's tests run: the repository's pinned dependency."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        deps = tomllib.load(f)["dependency-groups"]["dev"]
    pins = [d.split("==", 1)[1] for d in deps if re.fullmatch(r"copier==[\w.]+", d)]
    assert len(pins) == 1, f"pyproject.toml must pin copier exactly once: {deps}"
    return pins[0]


def quick_start_prefix() -> str:
    return f"uvx --from 'copier=={pinned_copier()}' copier"


def documents() -> list[Path]:
    # The changelog records what earlier releases said; it is history, not instructions.
    docs = sorted(p for p in (REPO_ROOT / "docs").rglob("*.md") if p.name != "changelog.md")
    return [REPO_ROOT / "README.md", *docs]


def code_in(text: str) -> list[str]:
    """Fenced blocks line by line, and inline code spans, as a reader would copy them."""
    fences = re.findall(r"^ *```[^\n]*\n(.*?)^ *```", text, flags=re.M | re.S)
    prose = re.sub(r"^ *```[^\n]*\n.*?^ *```", "", text, flags=re.M | re.S)
    # A shell comment after a command is prose, not part of the command.
    lines = [
        re.sub(r"\s#\s.*", "", line).strip() for block in fences for line in block.splitlines()
    ]
    spans = re.findall(r"`([^`\n]+)`", prose)
    return [c for c in lines + spans if c]


def misused_commands(text: str, prefix: str) -> list[str]:
    """Copier commands with arguments that do not start with the quick start's form.

    A bare `copier update` in prose names the subcommand; anything with arguments is a command
    a reader types, so it must be the one form.
    """
    bad = []
    for code in code_in(text):
        for match in re.finditer(SUBCOMMAND, code):
            bare = code.strip() == match.group(0)
            before = code[: match.start()]
            if not bare and not before.rstrip().endswith(prefix.rsplit(" ", 1)[0]):
                bad.append(code)
    return bad


@pytest.mark.parametrize("doc", documents(), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_copier_command_uses_the_one_quick_start_form(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    prefix = quick_start_prefix()
    found = {name: re.findall(rx, text) for name, rx in FORBIDDEN.items()}
    assert not {k: v for k, v in found.items() if v}, f"{doc.name}: {found}"
    pinned = set(re.findall(r"copier==([\w.]+)", text))
    assert pinned <= {pinned_copier()}, f"{doc.name} pins another Copier: {pinned}"
    assert not misused_commands(text, prefix), (
        f"{doc.name}: Copier commands not written as `{prefix} ...`: "
        f"{misused_commands(text, prefix)}"
    )


def test_the_readme_and_the_docs_quick_start_are_the_same_command() -> None:
    prefix = quick_start_prefix()

    def copy_commands(path: Path) -> set[str]:
        return {c for c in code_in(path.read_text("utf-8")) if c.startswith(f"{prefix} copy")}

    readme, docs = (
        copy_commands(REPO_ROOT / "README.md"),
        copy_commands(REPO_ROOT / "docs/index.md"),
    )
    assert len(readme) == 1, readme
    assert readme == docs


def test_the_pinned_copier_is_the_tested_one_everywhere() -> None:
    """The rendered update script and CI jobs run the same Copier as the quick start."""
    version = pinned_copier()
    copier_yml = yaml.safe_load((REPO_ROOT / "copier.yml").read_text(encoding="utf-8"))
    assert Version(copier_yml["_min_copier_version"]) <= Version(version)
    pins = {
        path.relative_to(REPO_ROOT).as_posix(): re.findall(r"copier==([\w.]+)", path.read_text())
        for path in (REPO_ROOT / "template").rglob("*")
        if path.is_file() and "copier==" in path.read_text(encoding="utf-8", errors="replace")
    }
    assert pins, "the rendered update script pins Copier"
    assert all(set(found) == {version} for found in pins.values()), pins


def test_the_check_catches_the_old_quick_starts() -> None:
    """The forms this test exists to keep out are caught (the checks themselves can fail)."""
    prefix = quick_start_prefix()
    old = [
        "```bash\npython3 -m pip install 'copier==9.19.1' && python3 -m copier copy . x\n```",
        "Interactively: `uvx copier copy <template> <destination>`",
        "```bash\ncopier update --defaults\n```",
    ]
    for text in old:
        found = [name for name, rx in FORBIDDEN.items() if re.search(rx, text)]
        assert found or misused_commands(text, prefix), text
    assert not misused_commands(f"`{prefix} update --defaults` and `copier update`", prefix)
