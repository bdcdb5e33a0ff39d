"""A throw-away PostgreSQL on a free loopback port, or the server named by TEST_DATABASE_URL.

The server is made with the local binaries (``initdb``, ``postgres``, ``pg_isready`` and
``pg_ctl`` from ``/usr/lib/postgresql/<version>/bin``, ``pg_config --bindir`` or the PATH), with
trust authentication and fsync off, in a fresh directory that is removed afterwards. PostgreSQL
refuses to run as root: under root the server runs as the ``postgres`` user. A server already
running on the machine is never used or touched, unless TEST_DATABASE_URL points at it.
"""

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from .server import free_port, require_binary, start_process, stop_process

TEST_DATABASE_URL = "TEST_DATABASE_URL"
SERVER_TOOLS = ("initdb", "postgres", "pg_isready", "pg_ctl")


def find_bindir() -> str | None:
    """The directory holding the SERVER_TOOLS, newest version first."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
        reverse=True,
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(result.stdout.strip())
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    for directory in candidates:
        if all((Path(directory) / tool).is_file() for tool in SERVER_TOOLS):
            return directory
    return None


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def sqlalchemy_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"postgresql+asyncpg://{rest}" if scheme in ("postgresql", "postgres") else url


@asynccontextmanager
async def connect(url: str, autocommit: bool = True) -> AsyncIterator[AsyncConnection]:
    """One connection to ``url`` (plain ``postgresql://`` accepted), closed afterwards."""
    engine = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            if autocommit:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection
    finally:
        await engine.dispose()


class PostgresServer:
    """A server the tests may create databases on; ``own`` servers may also be stopped."""

    def __init__(self, url: str | None = None) -> None:
        self.own = url is None
        self.directory: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        if url is not None:
            self.url = url
            return
        self.bindir = require_binary(find_bindir())
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            runuser = require_binary(shutil.which("runuser"))
            self.as_postgres = [runuser, "-u", "postgres", "--"]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def from_environment(cls) -> "PostgresServer":
        """The server of TEST_DATABASE_URL if set, else a throw-away one."""
        return cls(os.environ.get(TEST_DATABASE_URL) or None)

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self.as_postgres, *command],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd="/",  # the postgres user may not be allowed into the current directory
        )

    def start(self) -> None:
        if not self.own:
            return
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="pg-test-"))
            if self.as_postgres:
                shutil.chown(self.directory, "postgres", "postgres")
            self._run(
                f"{self.bindir}/initdb",
                "-D", f"{self.directory}/data",
                "-A", "trust",
                "-U", "postgres",
                "--no-sync",
                "--encoding", "UTF8",
            )  # fmt: skip
        settings = {
            "listen_addresses": "127.0.0.1",
            "fsync": "off",
            "max_connections": "100",
            "unix_socket_directories": str(self.directory),
        }
        options = [f"--{name}={value}" for name, value in settings.items()]
        with (self.directory / "server.log").open("ab") as log:
            self.process = start_process(
                [*self.as_postgres, f"{self.bindir}/postgres", "-D", f"{self.directory}/data",
                 "-p", str(self.port), *options],
                self._accepts_connections,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd="/",  # the postgres user may not be allowed into the current directory
            )  # fmt: skip

    def _accepts_connections(self) -> bool:
        ready = subprocess.run(
            [f"{self.bindir}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            check=False,
        )
        return ready.returncode == 0

    def stop(self) -> None:
        """Stop the server (fast: open connections are closed); its data is kept."""
        if self.own and self.directory is not None:
            self._run(
                f"{self.bindir}/pg_ctl", "-D", f"{self.directory}/data", "-m", "fast", "-w", "stop"
            )
            stop_process(self.process)
            self.process = None

    def remove(self) -> None:
        if not self.own or self.directory is None:
            return
        if (self.directory / "data" / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    async def create_database(self, template: str | None = None) -> str:
        """A new database on this server, empty or a copy of the database at ``template`` (no
        session may be connected to that one); its URL."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        copy = f' TEMPLATE "{urlsplit(template).path.lstrip("/")}"' if template else ""
        async with connect(self.url) as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        return with_database(self.url, name)

    async def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        async with connect(self.url) as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def fetch(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    """Run one statement on ``url`` (autocommit) and return its rows; for tests, not hot paths."""
    async with connect(url) as connection:
        result = await connection.execute(text(sql), params)
        return [tuple(row) for row in result.all()] if result.returns_rows else []


def query(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    """``fetch`` for code that is not already running an event loop."""
    return asyncio.run(fetch(url, sql, **params))


TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"


def table_names(url: str) -> set[str]:
    rows = query(url, TABLES)
    return {str(name) for (name,) in rows}
