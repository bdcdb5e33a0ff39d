"""A throw-away Azurite (Azure Blob emulator) on a free loopback port.

Install: ``npm install -g azurite@3.35.0`` (3.37 needs Node 22); the tests find ``azurite-blob``
on PATH. ``--skipApiVersionCheck`` lets clients newer than this Azurite talk to it.
"""

import base64
import hashlib
import hmac
import shutil
import subprocess
import uuid
from email.utils import formatdate
from pathlib import Path

import httpx2

from .gated_storage import GatedStorageServer
from .server import (
    TLS_CONTEXT,
    free_port,
    http_answers,
    require_binary,
    start_process,
    stop_process,
)

PROVIDER = "azure"
# Azurite's well-known development account (published in Azure's documentation).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
API_VERSION = "2023-11-03"


def shared_key_headers(method: str, path: str, query: dict[str, str]) -> dict[str, str]:
    """Headers of a request signed with the account key (Azure's SharedKey scheme)."""
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION}
    canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in sorted(headers))
    # The emulator's account is also the first path segment, so it appears twice.
    resource = f"/{ACCOUNT}{path}" + "".join(f"\n{name}:{query[name]}" for name in sorted(query))
    string_to_sign = method + "\n" * 12 + canonical_headers + resource
    digest = hmac.new(base64.b64decode(ACCOUNT_KEY), string_to_sign.encode(), hashlib.sha256)
    signature = base64.b64encode(digest.digest()).decode()
    return headers | {"Authorization": f"SharedKey {ACCOUNT}:{signature}"}


class StorageServer:
    def __init__(self, directory: Path) -> None:
        self.binary = require_binary(shutil.which("azurite-blob"))
        self.directory = directory
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_process(
            [
                self.binary,
                "--blobHost", "127.0.0.1",
                "--blobPort", str(self.port),
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--silent",
            ],
            lambda: http_answers(self.endpoint),
            cwd=self.directory,  # where Azurite writes its debug and lock files, if any
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        stop_process(self.process)

    def breakable(self, directory: Path) -> GatedStorageServer:
        """This server seen through a gate that an outage test closes and opens again."""
        return GatedStorageServer(self)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        query = {"restype": "container"}
        headers = shared_key_headers("PUT", f"/{ACCOUNT}/{name}", query)
        response = httpx2.put(
            f"{self.endpoint}/{name}", params=query, headers=headers, timeout=10, verify=TLS_CONTEXT
        )
        response.raise_for_status()
        return name

    def environment(self, bucket: str) -> dict[str, str]:
        return {
            "STORAGE_BUCKET": bucket,
            "STORAGE_ENDPOINT_URL": self.endpoint,
            "AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT,
            "AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY,
        }
