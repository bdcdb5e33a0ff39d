"""The local directory provider's "server": a directory, which an outage removes."""

import shutil
import uuid
from pathlib import Path

PROVIDER = "local"


class StorageServer:
    def __init__(self, directory: Path) -> None:
        self.root = directory / "volume"
        self.endpoint = str(self.root)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        """The volume goes away (an unmounted or lost share)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        (self.root / name).mkdir(parents=True, exist_ok=True)
        return name

    def environment(self, bucket: str) -> dict[str, str]:
        return {"STORAGE_LOCAL_PATH": str(self.root / bucket), "STORAGE_LOCAL_SHARED": "true"}
