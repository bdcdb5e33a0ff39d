"""The template's releases as the update tests see them.

``PREVIOUS_RELEASE`` is the last released commit of this repository. Tier 4 renders every
combination of that release's answer space, then updates it to the working tree with
``copier update``. The tests do not read git tags of this repository: they build a throw-away
repository with the previous release's files as one tagged commit and the working tree as the
next (see ``docs/updates.md``, "Cutting a release", for when to move these values).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Release:
    version: str
    commit: str

    @property
    def tag(self) -> str:
        return f"v{self.version}"


PREVIOUS_RELEASE = Release("0.1.0", "118f4fd925e554004df00777d0a572964a82f0f3")


def current_version() -> str:
    """The version being prepared: the template's own pyproject.toml."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])
