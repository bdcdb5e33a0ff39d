"""A throw-away Google Cloud Storage emulator (gcp-storage-emulator) on a free loopback port."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .gated_storage import GatedStorageServer
from .server import (
    TLS_CONTEXT,
    free_port,
    http_answers,
    require_binary,
    start_process,
    stop_process,
)

PROVIDER = "gcs"


def service_account_file(directory: Path) -> Path:
    """A service account key made up for the tests: signed URLs need a private key to sign with
    (the emulator does not check signatures, and no request ever leaves the machine)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = directory / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "test-project",
                "private_key_id": "test",
                "private_key": pem,
                "client_email": "files@test-project.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    return path


class StorageServer:
    def __init__(self, directory: Path) -> None:
        executable = Path(sys.executable).parent / "gcp-storage-emulator"
        self.binary = require_binary(str(executable) if executable.exists() else None)
        self.directory = directory
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.key_file = service_account_file(directory)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_process(
            [self.binary, "start", "--host", "127.0.0.1", "--port", str(self.port), "--in-memory"],
            lambda: http_answers(self.endpoint + "/storage/v1/b?project=test-project"),
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
        response = httpx2.post(
            f"{self.endpoint}/storage/v1/b",
            params={"project": "test-project"},
            json={"name": name},
            timeout=10,
            verify=TLS_CONTEXT,
        )
        response.raise_for_status()
        return name

    def environment(self, bucket: str) -> dict[str, str]:
        return {
            "STORAGE_BUCKET": bucket,
            "STORAGE_ENDPOINT_URL": self.endpoint,
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.key_file),
        }
