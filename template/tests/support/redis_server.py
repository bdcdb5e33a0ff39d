"""A throw-away redis-server (or valkey-server) on a free loopback port."""

import shutil
import subprocess
import time
from pathlib import Path

import redis

from .server import free_port, require_binary


class StoreServer:
    SCHEME = "redis"

    def __init__(self, directory: Path) -> None:
        self.binary = require_binary(shutil.which("valkey-server") or shutil.which("redis-server"))
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def command_count(self, command: str) -> int:
        """How many times the server ran `command` (e.g. "get") since it started."""
        stats = redis.Redis(port=self.port).info("commandstats")
        entry = stats.get(f"cmdstat_{command.lower()}")
        return int(entry["calls"]) if entry else 0

    def total_commands(self) -> int:
        """Data commands (reads, writes, deletes) the server ran since it started."""
        return sum(self.command_count(name) for name in ("get", "set", "del"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
