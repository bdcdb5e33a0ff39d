"""A throw-away memcached on a free loopback port."""

import os
import shutil
import subprocess
from pathlib import Path

from pymemcache.client.base import Client

from .server import answers, free_port, require_binary, start_process, stop_process


class StoreServer:
    SCHEME = "memcached"

    def __init__(self, directory: Path) -> None:
        self.binary = require_binary(shutil.which("memcached"))
        self.directory = directory
        self.port = free_port()
        self.url = f"memcached://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0"]
        if os.geteuid() == 0:
            command += ["-u", "root"]  # memcached refuses to run as root without being told
        client = Client(("127.0.0.1", self.port), connect_timeout=0.2)
        self.process = start_process(
            command, lambda: answers(client.version, OSError), stdout=subprocess.DEVNULL
        )

    def _stats(self) -> dict[bytes, int]:
        stats: dict[bytes, int] = Client(("127.0.0.1", self.port)).stats()
        return stats

    def command_count(self, command: str) -> int:
        """How many times the server ran `command` (e.g. "get") since it started."""
        return int(self._stats().get(f"cmd_{command.lower()}".encode(), 0))

    def total_commands(self) -> int:
        """Data commands (reads, writes, touches, deletes) the server ran since it started."""
        stats = self._stats()
        names = (b"cmd_get", b"cmd_set", b"cmd_touch", b"delete_hits", b"delete_misses")
        return sum(int(stats.get(name, 0)) for name in names)

    def stop(self) -> None:
        stop_process(self.process)
