"""Edits a team typically makes to a rendered project, applied before `copier update`.

Each edit takes the project directory (and its own arguments), changes files the way a person
or `uv add` would, and has a matching ``*_survived`` check for after the update.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

NEW_ROUTE = """

@router.get("/orders/{order_id}")
async def get_order(order_id: int) -> dict[str, int]:
    return {"order_id": order_id}
"""
README_DESCRIPTION = "Takes orders from the shop front and hands them to fulfilment."


def package_name(project: Path) -> str:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    return str(answers["package_name"])


def routes_file(project: Path) -> Path:
    return project / "src" / package_name(project) / "web" / "routes.py"


def add_route(project: Path) -> None:
    path = routes_file(project)
    path.write_text(path.read_text(encoding="utf-8") + NEW_ROUTE, encoding="utf-8")


def route_survived(project: Path) -> bool:
    return NEW_ROUTE.strip() in routes_file(project).read_text(encoding="utf-8")


def change_env_example(project: Path, name: str, value: str) -> None:
    path = project / ".env.example"
    text, count = re.subn(
        rf"^{name}=.*$", f"{name}={value}", path.read_text(encoding="utf-8"), flags=re.M
    )
    assert count == 1, f"{name} is not set in .env.example"
    path.write_text(text, encoding="utf-8")


def env_example_survived(project: Path, name: str, value: str) -> bool:
    lines = (project / ".env.example").read_text(encoding="utf-8").splitlines()
    return f"{name}={value}" in lines


def edit_readme_description(project: Path) -> None:
    """Rewrite the paragraph under the title (the rendered `description`)."""
    path = project / "README.md"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[0].startswith("# ") and not lines[1].strip(), "README does not open as expected"
    lines[2] = README_DESCRIPTION + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def readme_survived(project: Path) -> bool:
    return README_DESCRIPTION in (project / "README.md").read_text(encoding="utf-8").splitlines()


def add_dependency(project: Path, requirement: str) -> None:
    """Append to [project].dependencies, where `uv add` puts a new entry in an unsorted list."""
    path = project / "pyproject.toml"
    text = path.read_text(encoding="utf-8")
    start = text.index("dependencies = [\n")
    end = text.index("\n]\n", start)
    path.write_text(f'{text[:end]}\n    "{requirement}",{text[end:]}', encoding="utf-8")


def dependency_survived(project: Path, requirement: str) -> bool:
    import tomllib

    with (project / "pyproject.toml").open("rb") as f:
        return requirement in tomllib.load(f)["project"]["dependencies"]


def add_module(project: Path) -> None:
    path = project / "src" / package_name(project) / "orders.py"
    path.write_text('"""Order handling."""\n\nMAX_ITEMS = 50\n', encoding="utf-8")


def module_survived(project: Path) -> bool:
    return (project / "src" / package_name(project) / "orders.py").is_file()
