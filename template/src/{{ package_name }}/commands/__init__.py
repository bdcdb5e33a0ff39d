"""Subcommands of ``python -m <package>``: one module per command, found by the CLI at start.

A module here defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; its file
name is the command's name (``run_job.py`` is ``run-job``).
Which modules exist depends on the answers the service was generated with (for example
``migrate`` only with a database), so adding a command means adding a file.
"""

import atexit
import gc
import sys
from collections.abc import Callable

from .. import SERVICE_NAME
from ..config import ConfigError, Settings, check_configuration, ignored_env_file
from ..observability.logs import configure_logging, get_logger

EXIT_CONFIG_ERROR = 2
ENV_FILE_IGNORED = "not read: APP_ENV=production reads only the environment and SECRETS_DIR"


def start(*checks: Callable[[Settings], object]) -> Settings:
    """What every command does first: check every setting of every feature, plus the command's
    own ``checks``, at once (ConfigError names every problem), then configure logging."""
    # At exit the interpreter would collect the whole heap, a quarter of a second of every stop
    # (each rolling restart, each job run, each refused start) spent freeing memory the OS
    # frees anyway.
    atexit.register(gc.freeze)
    settings = check_configuration(*checks)
    configure_logging(settings.log_level, settings.log_format, settings.service_name)
    ignored = ignored_env_file()
    if ignored is not None:
        get_logger(__name__).warning(f"{ignored} {ENV_FILE_IGNORED}")
    return settings


def refuse_to_start(exc: ConfigError) -> int:
    """Print why the configuration is refused and return the exit code for it."""
    print(f"{SERVICE_NAME}: refusing to start: {exc}", file=sys.stderr)
    ignored = ignored_env_file()
    if ignored is not None:
        print(f"{SERVICE_NAME}: {ignored} {ENV_FILE_IGNORED}", file=sys.stderr)
    return EXIT_CONFIG_ERROR
