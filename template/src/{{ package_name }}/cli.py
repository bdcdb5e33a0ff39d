"""Command line: ``python -m <package> [command]``; ``serve`` is the default command.

Commands are the modules of the ``commands`` package, discovered here, so the CLI never needs
editing when a command is added. A module's name is its command's (``run_job.py`` is
``run-job``), so the command that runs is the only one imported: one command's dependencies (a
migration tool, a task queue) cost the others nothing at start.
"""

import argparse
import gc
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from . import commands

DEFAULT_COMMAND = "serve"


def command_modules() -> dict[str, str]:
    """Every command's name and the name of its module, without importing any of them."""
    return {
        info.name.replace("_", "-"): f"{commands.__name__}.{info.name}"
        for info in pkgutil.iter_modules(commands.__path__)
    }


def available_commands() -> dict[str, ModuleType]:
    """Every command module, imported: for the full help, and for tests."""
    return {name: importlib.import_module(path) for name, path in command_modules().items()}


def main(argv: Sequence[str] | None = None) -> int:
    # Importing a command and what it needs builds many objects that live as long as the
    # process and hardly any garbage: the collector's passes over them would cost every start
    # tens of milliseconds of CPU for nothing. It is back on before the command runs.
    gc.disable()
    try:
        arguments = list(sys.argv[1:] if argv is None else argv)
        known = command_modules()
        chosen = arguments[0] if arguments else DEFAULT_COMMAND
        # The top-level help and an unknown command list every command; anything else needs one.
        if chosen in known:
            modules = {chosen: importlib.import_module(known[chosen])}
        else:
            modules = available_commands()
        parser = argparse.ArgumentParser(prog=f"python -m {__package__}")
        subparsers = parser.add_subparsers(dest="command", metavar="command")
        for name, module in sorted(modules.items()):
            module.add_arguments(subparsers.add_parser(name, help=module.HELP))
        args = parser.parse_args(arguments)
    finally:
        gc.enable()  # also after --help or a usage error (SystemExit)
    command: int = modules[args.command or DEFAULT_COMMAND].run(args)
    return command
