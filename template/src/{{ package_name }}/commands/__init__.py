"""Subcommands of ``python -m <package>``: one module per command, found by the CLI at start.

A module here defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Which modules exist depends on the answers the service was generated with (for example
``migrate`` only with a database), so adding a command means adding a file.
"""

import sys

from .. import SERVICE_NAME
from ..config import ConfigError

EXIT_CONFIG_ERROR = 2


def refuse_to_start(exc: ConfigError) -> int:
    """Print why the configuration is refused and return the exit code for it."""
    print(f"{SERVICE_NAME}: refusing to start: {exc}", file=sys.stderr)
    return EXIT_CONFIG_ERROR
