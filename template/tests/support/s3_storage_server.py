"""A throw-away S3 server (moto's server mode) on a free loopback port."""

import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx2

from .server import free_port

PROVIDER = "s3"


class StorageServer:
    """moto in its own process, so a test can stop it (an outage) and start it again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(self.endpoint + "/moto-api/", timeout=1)
                return
            except httpx2.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        # moto accepts unsigned requests.
        httpx2.put(f"{self.endpoint}/{name}", timeout=10).raise_for_status()
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
