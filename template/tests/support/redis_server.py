"""A throw-away redis-server (or valkey-server) on a free loopback port."""

import shutil
import subprocess
from pathlib import Path

import redis

from .server import answers, free_port, require_binary, start_process, stop_process


class StoreServer:
    SCHEME = "redis"

    def __init__(self, directory: Path) -> None:
        self.binary = require_binary(shutil.which("valkey-server") or shutil.which("redis-server"))
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        self.process = start_process(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            lambda: answers(client.ping, redis.ConnectionError),
            timeout=10,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def command_count(self, command: str) -> int:
        """How many times the server ran `command` (e.g. "get") since it started."""
        stats = redis.Redis(port=self.port).info("commandstats")
        entry = stats.get(f"cmdstat_{command.lower()}")
        return int(entry["calls"]) if entry else 0

    def total_commands(self) -> int:
        """Data commands (reads, writes, deletes) the server ran since it started."""
        return sum(self.command_count(name) for name in ("get", "set", "del"))

    def stop(self) -> None:
        stop_process(self.process)
