"""The session's storage server behind a TCP gate, for the storage outage tests."""

from typing import Protocol

from .tcp_gate import TcpGate


class StorageServerLike(Protocol):
    port: int

    def create_bucket(self, name: str | None = None) -> str: ...

    def environment(self, bucket: str) -> dict[str, str]: ...


class GatedStorageServer:
    """The session's storage server behind a gate: ``stop`` closes the gate, ``start`` opens it
    again, and the buckets and objects are still there, as after a real server's restart with
    its data kept."""

    def __init__(self, server: StorageServerLike) -> None:
        self.server = server
        self.gate = TcpGate(server.port)
        self.gate.open()

    def stop(self) -> None:
        self.gate.close()

    def start(self) -> None:
        self.gate.open()

    def create_bucket(self, name: str | None = None) -> str:
        return self.server.create_bucket(name)

    def environment(self, bucket: str) -> dict[str, str]:
        environment = self.server.environment(bucket)
        return {name: self.gate.redirect(value) for name, value in environment.items()}
