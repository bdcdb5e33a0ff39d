"""Tier 5: the rendered Compose deployment, built and started in containers, passes the cluster
checks through its own load balancer.

For a few projects that between them contain every service the Compose file can hold (each
store, PostgreSQL and the migrate one-shot, each storage emulator and its one-shot, the Celery
worker and beat), the service image is built from the rendered Dockerfile (on the local base
image of tests/containers.py), the images the Compose file names are local stand-ins
(tests/compose_standins.py), and the rendered compose.yaml is started unchanged with
podman-compose (tests/compose_stack.py: dependency order, healthchecks and one-shots are
driven by the harness, as podman-compose does not).

Black-box checks, through the balancer's published port and `podman exec` into each replica:
sessions across replicas, one upload read through every replica, each job tick run once, the
migrate one-shot run once and before the replicas, a rolling restart of the replicas one at a
time under load with no failed request, a store outage (readiness 503, liveness 200) and
recovery without a restart, and `down` leaving no container, network or volume. A broken stack
(one replica signing with another SECRET_KEY) must make the session check fail.

Run with `pytest -m tier5` (tests/run.sh runs it beside tier 2). Needs root, podman, runc,
mmdebstrap, podman-compose and a reachable Debian mirror; a missing tool fails under CI=true.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from combinations import answer_space
from compose_stack import ComposeStack, podman_compose_binary, publish_env
from compose_standins import build_standins
from containers import CACHE, build_base_image, offline_build_inputs, podman_for_tests
from helpers import interpreter_for, require, uv_binary

pytestmark = pytest.mark.tier5

SPACE = answer_space()
TOOLS = ("podman", "runc", "mmdebstrap")
# Every service kind the Compose file can contain appears in one project at least, and every
# framework serves one stack: the image, the Compose file and the cluster checks are the same
# for all four, so each framework's image is proven to start, serve and drain in a container.
PROJECTS: dict[str, dict[str, Any]] = {
    # lb, app x3, store (redis), postgres + migrate, minio + storage-init; in-process jobs.
    "fastapi-redis-postgresql-s3": {"database": "postgresql"},
    # store (valkey), gcs emulator, celery worker + beat; WSGI under several server processes.
    "flask-valkey-gcs-celery": {
        "framework": "flask",
        "cache_backend": "valkey",
        "storage_provider": "gcs",
        "scheduler": "celery",
    },
    # store (memcached), the shared volume and its chown one-shot; PostgreSQL with Django's
    # migrations in the one-shot, the admin's static files collected in the image, and the
    # in-process jobs' locks in PostgreSQL (Memcached holds none).
    "django-memcached-local-postgresql": {
        "framework": "django",
        "cache_backend": "memcached",
        "storage_provider": "local",
        "database": "postgresql",
        "scheduler": "inprocess",
    },
    # azurite + the az one-shot.
    "litestar-azure": {"framework": "litestar", "storage_provider": "azure"},
}
# The full checks run on the first project; the others: it serves, sessions and files across
# replicas, the one-shots ran once, a tick ran once, down leaves nothing.
FULL = "fastapi-redis-postgresql-s3"
# Variables of the environment `compose up` reads, per project: this one runs its replicas with
# several server processes each, and one replica is restarted under load.
STACK_ENV: dict[str, dict[str, str]] = {"flask-valkey-gcs-celery": {"WEB_CONCURRENCY": "2"}}
DEMO_PASSWORD = secrets.token_urlsafe(24)
JOB = "rollup_events"
LOAD_RATE = 40.0


@dataclass
class StackReport:
    project: str
    services: dict[str, int] = field(default_factory=dict)
    requests_sent: int = 0
    requests_failed: int = 0
    session_requests: int = 0
    session_misses: int = 0
    replicas_reached: int = 0
    replicas_accepting: list[str] = field(default_factory=list)
    files_missing: int = -1
    ticks: int = 0
    duplicates: int = 0
    restarts: int = 0
    restart_errors: int = 0
    outage_readyz: list[int] = field(default_factory=list)
    outage_livez: list[int] = field(default_factory=list)
    recovery_seconds: float = -1.0
    one_shot_runs: dict[str, int] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    broken_secret: dict[str, int] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)
    store_addresses: list[str] = field(default_factory=list)
    login_recovery_seconds: float = -1.0
    errors_after_readiness: int = -1
    server_processes: list[int] = field(default_factory=list)


@pytest.fixture(scope="module")
def podman(request: pytest.FixtureRequest):
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if not podman_compose_binary():
        missing.append("podman-compose (uv tool install podman-compose==1.6.0)")
    if os.geteuid() != 0:
        missing.append("root (the podman setup here is rootful)")
    for what in missing:
        require(False, what)
    podman = podman_for_tests()
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build of the shared images at a time
        started = time.perf_counter()
        build_standins(podman, CACHE / "work")
        seconds = time.perf_counter() - started
    print(f"stand-in images: {seconds:.1f} s")
    return podman


def build_service_image(podman, renderer, tmp_path: Path, overrides: dict[str, Any]):
    """The rendered project, its lock, and its image tagged with the name compose.yaml uses."""
    uv = require(uv_binary(), "uv")
    combo = SPACE.default_combination()
    data = {**combo.data, **overrides}
    answers = SPACE.answers_with(data)
    python_version = str(answers["python_version"])
    interpreter = require(interpreter_for(python_version), f"Python {python_version}")
    project = renderer(data, tmp_path / "project")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(
        [uv, "lock", "--python", interpreter],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        base = build_base_image(podman, python_version, CACHE)
    volumes = offline_build_inputs(project, uv, interpreter, tmp_path / "offline")
    image = f"localhost/{answers['project_slug']}:local"
    started = time.perf_counter()
    podman(
        *("build", "--network", "none", "--format", "docker", "--layers"),
        *("--build-arg", f"PYTHON_IMAGE={base}", *volumes, "--tag", image, str(project)),
        timeout=900,
    )
    build_seconds = time.perf_counter() - started
    return project, answers, image, build_seconds


def override_for(secret_file: Path, services: dict[str, Any]) -> dict[str, Any]:
    """The test's settings beside the unchanged compose.yaml (see compose_stack's docstring)."""
    settings = {
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "JOBS_INTERVALS": json.dumps({JOB: 1}),
        "LOCK_TTL_SECONDS": "2",
    }
    override: dict[str, Any] = {
        "secrets": {"SECRET_KEY": {"environment": "", "file": str(secret_file)}},
        "services": {},
    }
    for name, service in services.items():
        if "SECRET_KEY" in (service.get("secrets") or []):
            override["services"][name] = {"environment": settings}
    return override


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status_code, self.headers, self.content = status, headers, body

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class Client:
    """Requests through the balancer's published port, one kept-alive connection per client
    (reopened after an error); production cookies are Secure, so they go by hand."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.port = int(base_url.rpartition(":")[2])
        self.connection: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            self.connection.request(method, path, body=body, headers=headers or {})
            response = self.connection.getresponse()
            return Response(response.status, response.headers, response.read())
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = None
            raise

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def login(self) -> dict[str, str]:
        body = json.dumps({"username": "demo", "password": DEMO_PASSWORD}).encode()
        response = self.request(
            "POST", "/session/login", body, {"Content-Type": "application/json"}
        )
        assert response.status_code == 200, f"login: {response.status_code} {response.text}"
        # Every cookie the login set (the session, and a CSRF cookie where the login rotates it).
        cookies = [c.partition(";")[0] for c in response.headers.get_all("set-cookie") or []]
        return {"Cookie": "; ".join(cookies)}


REPLICA_GET = """
import hashlib, http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", 8000, timeout=10)
c.request("GET", sys.argv[1], headers=json.loads(sys.argv[2]))
r = c.getresponse(); body = r.read()
print(json.dumps([r.status, hashlib.sha256(body).hexdigest(), body[:300].decode("latin-1")]))
"""


def replica_get(stack: ComposeStack, container: str, path: str, headers: dict[str, str]):
    out = stack.podman(
        "exec", container, "python", "-c", REPLICA_GET, path, json.dumps(headers), timeout=30
    ).stdout
    return json.loads(out)


def wait_until_ready(stack: ComposeStack, report: StackReport, timeout: float = 90) -> None:
    """Every replica answers /readyz with 200, as an operator waits before sending traffic.

    Compose's healthcheck is liveness (a replica that cannot reach the store must not be
    reported unhealthy and restarted by an orchestrator), so `up` returning and the balancer
    being healthy do not yet mean the replicas are ready: the balancer sends them traffic only
    once its own /readyz checks pass, and until then a first request can meet a replica still
    connecting to its dependencies."""
    started = time.monotonic()
    apps = stack.containers("app")
    codes: list[int] = []
    while True:
        codes = [replica_get(stack, c, "/readyz", {})[0] for c in apps]
        if all(code == 200 for code in codes):
            break
        assert time.monotonic() - started < timeout, f"replicas not ready: {codes}"
        time.sleep(0.5)
    report.timings["ready_after_up_s"] = round(time.monotonic() - started, 1)


def check_sessions(stack: ComposeStack, client: Client, report: StackReport, requests: int):
    client = Client(client.base_url)  # a new connection: the balancer closes idle ones
    cookie = client.login()
    refused: Counter[str] = Counter()
    for _ in range(requests):
        response = client.get("/session/whoami", headers=cookie)
        if response.status_code != 200 or response.json() != {"user": "demo"}:
            refused[f"{response.status_code} {response.text[:80]}"] += 1
    if refused:
        report.failures.append(f"session reads through the balancer: {dict(refused)}")
    misses = sum(refused.values())
    reached = 0
    report.replicas_accepting = []
    for container in stack.containers("app"):
        status, _, body = replica_get(stack, container, "/session/whoami", cookie)
        if status == 200 and json.loads(body) == {"user": "demo"}:
            reached += 1
            report.replicas_accepting.append(container)
        else:
            misses += 1
            report.failures.append(f"{container} /session/whoami {status}: {body[:120]}")
    report.session_requests += requests + len(stack.containers("app"))
    report.session_misses += misses
    report.replicas_reached = reached


def check_files(stack: ComposeStack, client: Client, report: StackReport) -> None:
    client = Client(client.base_url)
    cookie = client.login()
    body = os.urandom(256 * 1024)
    upload = client.request(
        "PUT",
        "/files/objects/compose-tier/upload.bin",
        body,
        {**cookie, "Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 201, f"upload: {upload.status_code} {upload.text[:500]}"
    digest = hashlib.sha256(body).hexdigest()
    missing = 0
    for container in stack.containers("app"):
        status, got, text = replica_get(
            stack, container, "/files/objects/compose-tier/upload.bin", cookie
        )
        if status != 200 or got != digest:
            missing += 1
            report.failures.append(f"{container} file: HTTP {status} {text[:120]}")
    report.files_missing = missing


def job_starts(stack: ComposeStack, service: str) -> list[tuple[str, str]]:
    starts = []
    for container in stack.containers(service):
        for entry in stack.logs(container):
            if entry.get("event") == "job started" and entry.get("job") == JOB:
                starts.append((container, str(entry.get("idempotency_key"))))
    return starts


def check_ticks(stack: ComposeStack, service: str, report: StackReport, want: int) -> None:
    deadline = time.monotonic() + want * 4 + 30
    while len({k for _, k in job_starts(stack, service)}) < want:
        assert time.monotonic() < deadline, f"fewer than {want} ticks of {JOB} started in time"
        time.sleep(1)
    time.sleep(1.5)  # the tick in progress is logged everywhere
    counts = Counter(key for _, key in job_starts(stack, service))
    report.ticks = len(counts)
    report.duplicates = sum(n - 1 for n in counts.values())


def check_one_shots(stack: ComposeStack, report: StackReport) -> None:
    """Each one-shot ran once (one container, exit 0), and finished before the service's own
    long-running containers (replicas, worker, beat) started, whatever ``depends_on`` says:
    a replica that serves before ``migrate`` or ``storage-init`` is done is the defect."""
    image = stack.compose["services"]["app"]["image"]
    own = [
        name
        for name, service in stack.compose["services"].items()
        if service.get("image") == image and not stack.one_shot(name)
    ]
    for service in stack.compose["services"]:
        if not stack.one_shot(service):
            continue
        containers = stack.containers(service)
        report.one_shot_runs[service] = len(containers)
        finished = []
        for container in containers:
            state = stack.inspect(container)["State"]
            assert state["ExitCode"] == 0, f"{container} exited {state['ExitCode']}"
            # podman says "stopped" until its exit command has cleaned the container up, and
            # "exited" after; both mean the process ended (seen: both, on the same podman 4.3).
            assert not state["Running"], f"{container} is still running"
            assert state["Status"] in {"exited", "stopped"}, f"{container} is {state['Status']}"
            finished.append(state["FinishedAt"])
        for dependent in own:
            for container in stack.containers(dependent):
                started = stack.inspect(container)["State"]["StartedAt"]
                assert started >= max(finished), f"{container} started before {service} ended"


def steady_load(base_url: str, stop: threading.Event, result: dict[str, Any]) -> None:
    interval = 1.0 / LOAD_RATE
    client = Client(base_url)
    next_at = time.monotonic()
    while not stop.is_set():
        result["sent"] += 1
        try:
            response = client.get("/")
            if response.status_code != 200:
                result["failures"].append(f"HTTP {response.status_code}")
        except (OSError, http.client.HTTPException) as error:
            result["failures"].append(type(error).__name__)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def check_rolling_restart(
    stack: ComposeStack, client: Client, report: StackReport, replicas: int = 3
) -> None:
    """The first ``replicas`` replicas in turn: SIGTERM (podman stop waits for the drain),
    start, healthy, then back in the balancer's rotation, while a steady load runs through the
    balancer."""
    stop = threading.Event()
    result: dict[str, Any] = {"sent": 0, "failures": []}
    loader = threading.Thread(target=steady_load, args=(client.base_url, stop, result))
    loader.start()
    codes = []
    try:
        time.sleep(1)
        for container in stack.containers("app")[:replicas]:
            stack.podman("stop", "--time", "30", container, timeout=60)
            codes.append(stack.inspect(container)["State"]["ExitCode"])
            stack.podman("start", container)
            stack.wait_healthy(container)
            time.sleep(6)  # two passing balancer checks (inter 2s, rise 2) and DNS (hold 5s)
        time.sleep(1)
    finally:
        stop.set()
        loader.join()
    report.requests_sent += result["sent"]
    report.requests_failed += len(result["failures"])
    report.restarts = len(codes)
    report.restart_errors = sum(1 for code in codes if code != 0)
    if result["failures"]:
        report.failures.append(f"rolling restart: {dict(Counter(result['failures']))}")
    if report.restart_errors:
        report.failures.append(f"exit codes on SIGTERM: {codes}")


SERVER_PROCESSES = """
import pathlib
supervisor = pathlib.Path("/proc/1/cmdline").read_bytes()
children = pathlib.Path("/proc/1/task/1/children").read_text().split()
servers = [c for c in children if b"spawn_main" in pathlib.Path(f"/proc/{c}/cmdline").read_bytes()]
print(len(servers) if b"serve" in supervisor else -1)
"""


def check_server_processes(stack: ComposeStack, report: StackReport) -> None:
    """How many server processes each replica's supervisor (PID 1, the container's command)
    runs: -1 when PID 1 is not the service."""
    report.server_processes = [
        int(stack.exec_python(container, SERVER_PROCESSES).strip())
        for container in stack.containers("app")
    ]


def check_store_outage(stack: ComposeStack, report: StackReport) -> None:
    apps = stack.containers("app")
    started_at = [stack.inspect(c)["State"]["StartedAt"] for c in apps]
    store = stack.containers("store")[0]
    addresses = [stack.address(store)]
    stack.podman("stop", "--time", "10", store, timeout=60)
    deadline = time.monotonic() + 30
    while True:
        readyz = [replica_get(stack, c, "/readyz", {})[0] for c in apps]
        if all(code == 503 for code in readyz) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    report.outage_readyz = readyz
    report.outage_livez = [replica_get(stack, c, "/livez", {})[0] for c in apps]
    # Back at another address, as a restarted container or pod usually is: the replicas'
    # pooled connections to the old one must not keep them unready.
    stack.move("store")
    started = time.monotonic()
    addresses.append(stack.address(store))
    assert addresses[0] != addresses[1], f"the store came back at the same address: {addresses}"
    hosts = stack.podman("exec", apps[0], "getent", "hosts", "store").stdout.split()
    assert hosts[:1] == [addresses[1]], f"a replica resolves store to {hosts}, not {addresses[1]}"
    report.store_addresses = addresses
    deadline = started + 60
    while not all(replica_get(stack, c, "/readyz", {})[0] == 200 for c in apps):
        assert time.monotonic() < deadline, "the replicas did not recover from the store outage"
        time.sleep(0.5)
    report.recovery_seconds = round(time.monotonic() - started, 2)
    # Readiness is back; a session written through the balancer must work too. Refusals seen
    # after readiness recovered are counted (connections pooled before the outage).
    login_errors: list[str] = []
    deadline = time.monotonic() + 60
    while True:
        try:
            Client(f"http://127.0.0.1:{stack.env['HTTP_PORT']}").login()
            break
        except (AssertionError, OSError, http.client.HTTPException) as error:
            login_errors.append(str(error)[:120])
            assert time.monotonic() < deadline, f"no login after the outage: {login_errors[-3:]}"
            time.sleep(0.5)
    report.login_recovery_seconds = round(time.monotonic() - started, 2)
    report.errors_after_readiness = len(login_errors)
    if login_errors:
        report.failures.append(f"after readiness was back: {Counter(login_errors)}")
    # One login through the balancer needs one replica back in its rotation; every replica is
    # back after two passing checks (inter 2s, rise 2), and a check sent during the outage can
    # still fail after the store is back (it waits for the 1 s store timeout), so wait for
    # the rotation as an operator would before the next check.
    time.sleep(6)
    after = [stack.inspect(c)["State"]["StartedAt"] for c in apps]
    assert after == started_at, "a replica restarted during the store outage"


def run_stack(
    podman, renderer, tmp_path: Path, name: str, full: bool, report: StackReport
) -> StackReport:
    started = time.perf_counter()
    project, answers, image, build_seconds = build_service_image(
        podman, renderer, tmp_path, PROJECTS[name]
    )
    report.timings["service_build_s"] = round(build_seconds, 1)
    inspect = json.loads(podman("image", "inspect", image).stdout)[0]
    report.timings["image_mb"] = round(inspect["Size"] / 1e6, 1)
    secret_file = tmp_path / "secret_key"
    secret_file.write_text(secrets.token_urlsafe(48))
    compose_name = "t5" + name.replace("-", "")
    stack = ComposeStack(podman, project, compose_name, {}, publish_env() | STACK_ENV.get(name, {}))
    stack.write_override(override_for(secret_file, stack.compose["services"]))
    client = Client(f"http://127.0.0.1:{stack.env['HTTP_PORT']}")
    up_started = time.perf_counter()
    with stack.running():
        report.timings["up_s"] = round(time.perf_counter() - up_started, 1)
        report.services = {s: len(stack.containers(s)) for s in stack.compose["services"]}
        stack.wait_for("lb", "service_healthy")
        wait_until_ready(stack, report)
        check_one_shots(stack, report)
        check_sessions(stack, client, report, requests=60)
        check_files(stack, client, report)
        if answers["scheduler"] in ("inprocess", "celery"):
            service = "app" if answers["scheduler"] == "inprocess" else "worker"
            check_ticks(stack, service, report, want=8 if full else 3)
        if name in STACK_ENV:
            check_server_processes(stack, report)
            # One replica is enough to see its processes drain and the container exit 0.
            check_rolling_restart(stack, client, report, replicas=1)
        if full:
            report.timings["venv_mb"] = int(
                podman(
                    "exec", stack.containers("app")[0], "du", "-sm", "/app/.venv"
                ).stdout.split()[0]
            )
            check_rolling_restart(stack, client, report)
            check_store_outage(stack, report)
            check_sessions(stack, client, report, requests=30)
            # The deliberately broken stack: the same checks must now fail.
            broken = StackReport(project=f"{name} with one replica's own SECRET_KEY")
            odd_one = swap_replica_secret(stack, tmp_path)
            check_sessions(stack, client, broken, requests=30)
            # The login lands on any replica: its cookie is signed with that replica's key,
            # so either the two sharing the key accept it, or only the odd one does.
            accepting = set(broken.replicas_accepting)
            report.broken_secret = {
                "session_requests": broken.session_requests,
                "session_misses": broken.session_misses,
                "replicas_reached": broken.replicas_reached,
                "split_by_key": int(
                    accepting in ({odd_one}, set(stack.containers("app")) - {odd_one})
                ),
            }
        # A service that crashed at start (restart: unless-stopped) was restarted by podman.
        report.restarted = [
            f"{container} ({stack.inspect(container).get('RestartCount', 0)} restarts)"
            for service in stack.compose["services"]
            if not stack.one_shot(service)
            for container in stack.containers(service)
            if stack.inspect(container).get("RestartCount", 0)
        ]
        if report.session_misses or report.failures or report.restarted:
            stack.print_tails()
        down_started = time.perf_counter()
        report.leftovers = stack.down()
        report.timings["down_s"] = round(time.perf_counter() - down_started, 1)
    report.timings["wall_s"] = round(time.perf_counter() - started, 1)
    return report


def swap_replica_secret(stack: ComposeStack, tmp_path: Path) -> str:
    """Broken stack: the last replica is recreated with a SECRET_KEY of its own, with the
    settings podman-compose gave it otherwise (podman's record of its create command)."""
    container = stack.containers("app")[-1]
    other = tmp_path / "other_secret_key"
    other.write_text(secrets.token_urlsafe(48))
    source = next(
        m["Source"]
        for m in stack.inspect(container)["Mounts"]
        if m["Destination"] == "/run/secrets/SECRET_KEY"
    )
    stack.recreate(container, {source: str(other)})
    stack.wait_healthy(container)
    # Ready, so its rejections come from the other key and not from a missing dependency.
    deadline = time.monotonic() + 60
    while replica_get(stack, container, "/readyz", {})[0] != 200:
        assert time.monotonic() < deadline, f"the recreated {container} never became ready"
        time.sleep(0.5)
    # In the balancer's rotation: it found the new address (its resolver asks every second
    # and holds an answer 5 s) and two checks passed. Seen once: 1 request of 33 reached it
    # after a fixed 6 s wait. So wait until its own log shows a request the balancer sent.
    client = Client(f"http://127.0.0.1:{stack.env['HTTP_PORT']}")
    deadline = time.monotonic() + 60
    while not any(e.get("path") == "/" for e in stack.logs(container)):
        assert time.monotonic() < deadline, f"the balancer never sent {container} a request"
        for _ in range(3):
            client.get("/")
        time.sleep(0.5)
    return container


def _record(request: pytest.FixtureRequest, report: StackReport) -> None:
    request.node.user_properties.append(("tier5", asdict(report)))
    print(json.dumps(asdict(report), indent=1))


@pytest.mark.parametrize("name", PROJECTS)
def test_compose_stack_passes_the_cluster_checks(
    name: str, podman, renderer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    report = StackReport(project=name)
    try:
        run_stack(podman, renderer, tmp_path, name, name == FULL, report)
    finally:
        _record(request, report)
    assert report.session_misses == 0, report.failures
    assert report.replicas_reached == 3, report.failures
    assert report.files_missing == 0, report.failures
    assert report.duplicates == 0, f"ticks started more than once: {report}"
    assert all(n == 1 for n in report.one_shot_runs.values()), report.one_shot_runs
    assert report.restarted == [], f"restarted by podman (crashed): {report.restarted}"
    assert report.leftovers == [], f"down left behind: {report.leftovers}"
    if name in STACK_ENV:
        want = int(STACK_ENV[name]["WEB_CONCURRENCY"])
        assert report.server_processes == [want] * 3, report.server_processes
        assert report.requests_sent > 0 and report.requests_failed == 0, report.failures
        assert report.restarts == 1 and report.restart_errors == 0, report.failures
    if name == FULL:
        assert report.ticks >= 8
        assert report.requests_sent > 0 and report.requests_failed == 0, report.failures
        assert report.restarts == 3 and report.restart_errors == 0, report.failures
        assert report.outage_readyz == [503] * 3, report.outage_readyz
        assert report.outage_livez == [200] * 3, report.outage_livez
        assert report.recovery_seconds >= 0
        # The broken stack: a replica signing with its own SECRET_KEY rejects the session.
        assert report.broken_secret["session_misses"] > 0, report.broken_secret
        assert report.broken_secret["replicas_reached"] in (1, 2), report.broken_secret
        assert report.broken_secret["split_by_key"] == 1, report.broken_secret
