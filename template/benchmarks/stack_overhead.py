"""Server CPU per request: the full service against the bare framework, in the production profile.

Two servers run side by side: the service itself (its real entry point, APP_ENV=production,
against a throw-away store and storage server) and a bare app of the same framework
(``benchmarks/bare/``) with the same routes on the same uvicorn settings. ``--compare litestar``
(or ``fastapi``, ``flask``, ``django``) adds the other framework's bare app, run in a throw-away
environment by ``uv run --with``, so one run also compares the frameworks. Each server is pinned
to core 0; wrk, pinned to core 1, loads one route of one server at a time, alternating the
servers in every round so machine noise hits all alike.

Around each wrk run the server's CPU time (user + system, all threads, from /proc/PID/stat) is
read; CPU per request is the steadiest of the numbers on a shared machine, req/s and p99 move
more. Prints per route the median and spread (min-max) of each, and the ratios full/bare, plus
start-up to the first 200 on /readyz (bytecode already cached, as in the image) and the idle
resident memory of each server.

    uv run python -m benchmarks.stack_overhead [--rounds 5] [--duration 5] [--connections 32]
        [--compare FRAMEWORK]

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install wrk``; macOS: ``brew install wrk``) and Linux
(/proc, taskset). A service generated with a database gets a throw-away PostgreSQL, like its
tests. Variables set in the environment (a DATABASE_URL, for example) reach the service; a
production setting the service still lacks stops the run with the service's own refusal.
A measurement, not a test, unless budgets are given: ``--budget /livez=1.05`` (repeatable)
exits 1, naming the route, when the median full/bare CPU ratio of that route is above it.
"""

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from tests.conftest import SERVICE_PACKAGE, STORE_SERVER
from tests.support.server import free_port
from tests.support.storage_fixtures import StorageServer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BARE_APPS = PROJECT_ROOT / "benchmarks" / "bare"
ROUTES = ("/livez", "/", "/session/whoami")
# Every framework with a bare app in benchmarks/bare/, and the release line the template pins.
FRAMEWORKS = {
    "fastapi": ["fastapi>=0.133,<1"],
    "litestar": ["litestar>=2.25,<3"],
    # A WSGI framework runs on uvicorn through the service's WSGI bridge, as the service does:
    # its bare app exists only in a Flask project, so it is compared only from there.
    "flask": ["flask>=3.1,<4"],
    # Django's own ASGI handler, as the service runs it.
    "django": ["django>=6.1,<7"],
}
DEMO_USER = "demo"  # the demo login account (DEMO_USERNAME default)
SERVER_CORE = "0"
LOAD_CORE = "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    ready_seconds: float
    idle_rss_mib: float
    # CPU spent until ready: steadier than the wall time on a busy machine.
    ready_cpu_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    def cpu_seconds(self) -> float:
        """User + system CPU of every thread of the process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(name: str, command: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    """Start a server pinned to the server core; time it to the first 200 on /readyz.

    A first start, untimed and stopped at once, leaves Python's bytecode cache behind, as the
    image compiles it at build time: the timed start measures starting, not compiling (with
    PYTHONDONTWRITEBYTECODE set, every start would compile every module again).
    """
    env = {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}
    launch(name, command, env | {"SHUTDOWN_DRAIN_SECONDS": "0"}, port, log).stop()
    return launch(name, command, env, port, log)


def launch(name: str, command: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    began = time.monotonic()
    with log.open("ab") as output:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *command],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = began + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"{name} server exited with {process.returncode} before it was ready:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        try:
            if httpx2.get(base_url + "/readyz", timeout=1).status_code == 200:
                ready = time.monotonic() - began
                server = Server(name, process, base_url, ready, 0.0)
                server.ready_cpu_seconds = server.cpu_seconds()
                time.sleep(1)  # let start-up work settle before reading the idle memory
                server.idle_rss_mib = rss_mib(process.pid)
                return server
        except httpx2.TransportError:
            pass
        time.sleep(0.02)
    process.kill()
    raise SystemExit(f"{name} server did not get ready within 60 s (log: {log})")


def log_in(server: Server, password: str, cookie_name: str) -> None:
    """A logged-in session cookie for /session/whoami (sent by hand: production cookies are
    Secure and the benchmark speaks plain HTTP)."""
    response = httpx2.post(
        server.base_url + "/session/login",
        json={"username": DEMO_USER, "password": password},
        timeout=10,
    )
    response.raise_for_status()
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == cookie_name:
            server.headers["Cookie"] = f"{cookie_name}={rest.split(';', 1)[0]}"
            return
    raise SystemExit("login set no session cookie")


@dataclass
class Sample:
    cpu_us: float
    rps: float
    p99_ms: float


def run_wrk(server: Server, route: str, args: argparse.Namespace) -> Sample:
    command = [
        "taskset", "-c", LOAD_CORE, "wrk", "--latency",
        f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
    ]  # fmt: skip
    for name, value in server.headers.items():
        command += ["-H", f"{name}: {value}"]
    before = server.cpu_seconds()
    output = subprocess.run(
        [*command, server.base_url + route], capture_output=True, text=True, check=True
    ).stdout
    used = server.cpu_seconds() - before
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"{server.name} {route}: errors under load:\n{output}")
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    return Sample(used / total * 1e6, rps, float(value) * _UNITS[unit])


def production_environment(store_url: str, storage: dict[str, str]) -> dict[str, str]:
    return {
        # The caller's variables win over nothing but reach the service (a DATABASE_URL, say).
        **os.environ,
        "APP_ENV": "production",
        # One server process against the bare framework's one, both pinned to one core; its CPU
        # and memory are read from /proc of that process.
        "WEB_CONCURRENCY": "1",
        "HOST": "127.0.0.1",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "STORE_URL": store_url,
        "DEMO_PASSWORD": secrets.token_urlsafe(24),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "OTEL_TRACES_EXPORTER": os.environ.get("OTEL_TRACES_EXPORTER", "none"),
        **storage,
    }


def database_environment(cleanup: contextlib.ExitStack) -> dict[str, str]:
    """A service generated with a database gets a fresh one on a throw-away PostgreSQL (the
    tests' helper), unless the caller set DATABASE_URL."""
    helper = "tests.support.postgres_server"
    if "DATABASE_URL" in os.environ or importlib.util.find_spec(helper) is None:
        return {}
    server = importlib.import_module(helper).PostgresServer.from_environment()
    server.start()
    cleanup.callback(server.stop)
    return {"DATABASE_URL": asyncio.run(server.create_database())}


def spread(values: list[float], digits: int) -> str:
    """Median (min-max)."""
    median, low, high = statistics.median(values), min(values), max(values)
    return f"{median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def cpu_ratio(results: dict[tuple[str, str], list[Sample]], route: str, name: str) -> float:
    """The median of each round's CPU-per-request ratio ``name``/bare on ``route``."""
    pairs = zip(results[(route, "bare")], results[(route, name)], strict=True)
    return statistics.median(other.cpu_us / bare.cpu_us for bare, other in pairs)


def over_budget(
    results: dict[tuple[str, str], list[Sample]], budgets: dict[str, float]
) -> list[str]:
    """The routes whose full/bare CPU ratio exceeds their budget, each with both numbers."""
    return [
        f"{route}: {cpu_ratio(results, route, 'full'):.2f}x the bare app's CPU per request "
        f"(budget {limit:.2f}x)"
        for route, limit in budgets.items()
        if cpu_ratio(results, route, "full") > limit
    ]


def budget(text: str) -> tuple[str, float]:
    """``ROUTE=RATIO``, for --budget."""
    route, _, ratio = text.partition("=")
    if route not in ROUTES or not ratio:
        raise argparse.ArgumentTypeError(f"expected ROUTE=RATIO with ROUTE one of {ROUTES}")
    return route, float(ratio)


def print_ratios(results: dict[tuple[str, str], list[Sample]], name: str) -> None:
    """Per route, ``name`` against the project's bare framework: the median of each round's
    ratio, so a slow moment of the machine cancels out."""
    pair = f"{name}/bare"
    print(f"\n{'route':<16}{'CPU/req ' + pair:>28}{'req/s ' + pair:>28}{'p99 ' + pair:>28}")
    for route in ROUTES:
        bare, other = results[(route, "bare")], results[(route, name)]
        rps = [o.rps / b.rps for b, o in zip(bare, other, strict=True)]
        tail = [o.p99_ms / b.p99_ms for b, o in zip(bare, other, strict=True)]
        print(
            f"{route:<16}{cpu_ratio(results, route, name):>28.2f}"
            f"{statistics.median(rps):>28.2f}{statistics.median(tail):>28.2f}"
        )


def own_framework() -> str:
    """The framework the project declares in its pyproject.toml (its bare app runs in the
    project's environment). Not what is importable: a library may bring another framework in
    (moto's server, in the tests' dependencies, needs Flask)."""
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    names = {
        re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()
        for requirement in pyproject["project"]["dependencies"]
    }
    declared = [name for name in FRAMEWORKS if name in names]
    if len(declared) != 1:
        raise SystemExit(f"expected one of {sorted(FRAMEWORKS)} declared, found {declared}")
    return declared[0]


def bare_command(framework: str, own: str, port: int, work: Path) -> list[str]:
    module = ["-m", f"benchmarks.bare.{framework}_app", str(port)]
    if framework == own:
        return [sys.executable, *module]
    return [other_framework_python(framework, work / f"{framework}-venv"), *module]


def other_framework_python(framework: str, venv: Path) -> str:
    """The interpreter of a throw-away virtual environment holding ``framework`` and the
    project's uvicorn, made by uv (started directly, so the CPU read is the server's)."""
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("--compare installs the other framework with uv, which is not on PATH")
    python = venv / "bin" / "python"
    uvicorn = f"uvicorn[standard]=={importlib.metadata.version('uvicorn')}"
    for command in (
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(python), *FRAMEWORKS[framework], uvicorn],
    ):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"could not install {framework} with uv:\n{done.stderr[-2000:]}")
    return str(python)


def report(results: dict[tuple[str, str], list[Sample]], servers: dict[str, Server]) -> None:
    print(f"\n{'route':<16}{'app':<16}{'CPU µs/req':>24}{'req/s':>24}{'p99 ms':>24}")
    for route in ROUTES:
        for name in servers:
            samples = results[(route, name)]
            print(
                f"{route:<16}{name:<16}"
                f"{spread([s.cpu_us for s in samples], 1):>24}"
                f"{spread([s.rps for s in samples], 0):>24}"
                f"{spread([s.p99_ms for s in samples], 2):>24}"
            )
    for other in servers:
        if other != "bare":
            print_ratios(results, other)
    bare_server, full_server = servers["bare"], servers["full"]
    ready = (bare_server.ready_seconds, full_server.ready_seconds)
    ready_cpu = (bare_server.ready_cpu_seconds, full_server.ready_cpu_seconds)
    rss = (bare_server.idle_rss_mib, full_server.idle_rss_mib)
    print(
        f"\nstart-up to ready: bare {ready[0]:.2f} s, full {ready[1]:.2f} s "
        f"({ready[1] / ready[0]:.2f}x); its CPU: bare {ready_cpu[0]:.2f} s, "
        f"full {ready_cpu[1]:.2f} s ({ready_cpu[1] / ready_cpu[0]:.2f}x); "
        f"idle RSS: bare {rss[0]:.0f} MiB, full {rss[1]:.0f} MiB ({rss[1] / rss[0]:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        choices=sorted(name for name in FRAMEWORKS if (BARE_APPS / f"{name}_app.py").exists()),
        help="also load this framework's bare app (installed by uv in a throw-away environment)",
    )
    parser.add_argument(
        "--budget",
        action="append",
        default=[],
        type=budget,
        metavar="ROUTE=RATIO",
        help="exit 1 if the route's full/bare CPU ratio is above RATIO (repeatable)",
    )
    args = parser.parse_args()
    own = own_framework()
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed: this benchmark needs it as its load generator "
            "(Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)"
        )
    if shutil.which("taskset") is None or not Path("/proc/self/stat").exists():
        raise SystemExit("this benchmark needs Linux: /proc and taskset (util-linux)")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("this benchmark needs 2 cores: one for the server, one for wrk")

    with (
        tempfile.TemporaryDirectory(prefix="stack-overhead-") as tmp,
        contextlib.ExitStack() as cleanup,
    ):
        work = Path(tmp)
        (work / "store").mkdir()
        (work / "storage").mkdir()
        store = STORE_SERVER(work / "store")
        storage = StorageServer(work / "storage")
        store.start()
        cleanup.callback(store.stop)
        storage.start()
        cleanup.callback(storage.stop)
        servers: dict[str, Server] = {}
        try:
            env = production_environment(store.url, storage.environment(storage.create_bucket()))
            env.update(database_environment(cleanup))
            bare_port, full_port = free_port(), free_port()
            servers["bare"] = start(
                "bare",
                bare_command(own, own, bare_port, work),
                {**os.environ, "APP_ENV": "development"},
                bare_port,
                work / "bare.log",
            )
            for other in dict.fromkeys(args.compare):
                if other != own:
                    port = free_port()
                    name = f"bare-{other}"
                    command = bare_command(other, own, port, work)
                    log = work / f"{name}.log"
                    servers[name] = start(name, command, dict(os.environ), port, log)
            servers["full"] = start(
                "full",
                [sys.executable, "-m", SERVICE_PACKAGE],
                {**env, "PORT": str(full_port), "ADMIN_PORT": str(free_port())},
                full_port,
                work / "full.log",
            )
            log_in(servers["full"], env["DEMO_PASSWORD"], env.get("SESSION_COOKIE_NAME", "session"))
            results: dict[tuple[str, str], list[Sample]] = {
                (route, name): [] for route in ROUTES for name in servers
            }
            warm = argparse.Namespace(**{**vars(args), "duration": 1})
            for route in ROUTES:
                for server in servers.values():
                    run_wrk(server, route, warm)  # not measured
            for number in range(1, args.rounds + 1):
                for route in ROUTES:
                    for name, server in servers.items():
                        results[(route, name)].append(run_wrk(server, route, args))
                print(f"round {number}/{args.rounds} done", file=sys.stderr)
            report(results, servers)
        finally:
            for server in servers.values():
                server.stop()
    exceeded = over_budget(results, dict(args.budget))
    if exceeded:
        raise SystemExit("over budget:\n  " + "\n  ".join(exceeded))


if __name__ == "__main__":
    main()
