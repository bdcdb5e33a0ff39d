"""A throw-away S3 server (moto's server mode) on a free loopback port."""

import subprocess
import sys
import uuid
from pathlib import Path

import httpx2

from .gated_storage import GatedStorageServer
from .server import TLS_CONTEXT, free_port, http_answers, start_process, stop_process

PROVIDER = "s3"


class StorageServer:
    """moto in its own process; an outage test cuts it off through a gate (``breakable``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_process(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            lambda: http_answers(self.endpoint + "/moto-api/"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        stop_process(self.process)

    def breakable(self, directory: Path) -> GatedStorageServer:
        """This server seen through a gate that an outage test closes and opens again."""
        return GatedStorageServer(self)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        # moto accepts unsigned requests.
        httpx2.put(f"{self.endpoint}/{name}", timeout=10, verify=TLS_CONTEXT).raise_for_status()
        return name

    def environment(self, bucket: str) -> dict[str, str]:
        """The variables that point the service at this server and bucket."""
        return {
            "STORAGE_BUCKET": bucket,
            "STORAGE_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test-access-key",
            "AWS_SECRET_ACCESS_KEY": "test-secret-key",
            "AWS_REGION": "us-east-1",
        }
