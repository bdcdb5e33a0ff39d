"""Command line: ``python -m <package> [command]``; ``serve`` is the default command.

Commands are the modules of the ``commands`` package, discovered here, so the CLI never needs
editing when a command is added.
"""

import argparse
import importlib
import pkgutil
from collections.abc import Sequence
from types import ModuleType

from . import commands

DEFAULT_COMMAND = "serve"


def available_commands() -> dict[str, ModuleType]:
    found = {}
    for info in pkgutil.iter_modules(commands.__path__):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        found[module.NAME] = module
    return found


def main(argv: Sequence[str] | None = None) -> int:
    modules = available_commands()
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}")
    subparsers = parser.add_subparsers(dest="command", metavar="command")
    for name, module in sorted(modules.items()):
        module.add_arguments(subparsers.add_parser(name, help=module.HELP))
    args = parser.parse_args(argv)
    command: int = modules[args.command or DEFAULT_COMMAND].run(args)
    return command
