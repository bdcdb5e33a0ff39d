"""The local directory provider's "server": a directory, which an outage unmounts."""

import uuid
from pathlib import Path

PROVIDER = "local"


class StorageServer:
    def __init__(self, directory: Path) -> None:
        self.root = directory / "volume"
        self.unmounted = directory / "volume-unmounted"
        self.endpoint = str(self.root)

    def start(self) -> None:
        """Mount the volume: again with its files after a ``stop``."""
        if self.unmounted.exists():
            self.unmounted.rename(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        """The volume goes away (an unmounted share), its files kept for ``start``."""
        if self.root.exists():
            self.root.rename(self.unmounted)

    def breakable(self, directory: Path) -> "StorageServer":
        """A volume of the test's own (a directory costs nothing to make)."""
        server = StorageServer(directory)
        server.start()
        return server

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        (self.root / name).mkdir(parents=True, exist_ok=True)
        return name

    def environment(self, bucket: str) -> dict[str, str]:
        return {"STORAGE_LOCAL_PATH": str(self.root / bucket), "STORAGE_LOCAL_SHARED": "true"}
