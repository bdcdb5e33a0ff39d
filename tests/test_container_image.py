"""Slow tier: the default project's image is built with podman and run.

No container registry is reachable here, so the base image is made locally: a Debian minbase
root filesystem (mmdebstrap, the host's release) with the pyenv CPython of the project's Python
version under /usr/local, like the official python:<version>-slim images. It is passed to the
unchanged Dockerfile through the PYTHON_IMAGE build argument. The build runs with
``--network none``: the uv wheel and a uv cache holding every locked distribution are prepared
on the host beforehand and handed to the build through system-level configuration files
(/etc/pip.conf, /etc/uv/uv.toml), which any registry mirror setup could use the same way.

The container then runs as in a cluster: production profile, a real Redis, read-only root
filesystem without any writable tmpfs, and must answer /livez and /readyz, run as the numeric
non-root user, pass its own HEALTHCHECK, and exit 0 on SIGTERM after the drain.

The base image, the uv cache and podman's storage are kept between runs under
``$TEMPLATE_TESTS_CONTAINER_CACHE`` (default ``~/.cache/cluster-service-template/container-tests``).
Podman runs rootful with its own storage.conf and containers.conf there (runc, cgroupfs).

It is opt-in: it runs only when asked for with ``-m slow`` or ``TEMPLATE_TESTS_SLOW=1``
(needs root, Debian's podman buildah runc fuse-overlayfs uidmap mmdebstrap, and a reachable
Debian mirror), and then a missing tool fails under CI=true.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from combinations import default_combination
from helpers import interpreter_for, require, uv_binary
from servers import accepts_connections, answers_http, free_port, running, wait_until

pytestmark = pytest.mark.slow

CACHE = Path(
    os.environ.get("TEMPLATE_TESTS_CONTAINER_CACHE")
    or Path.home() / ".cache" / "cluster-service-template" / "container-tests"
)
# Shared libraries the pyenv interpreter's extension modules link against, plus what the
# official slim images install (ca-certificates, netbase, tzdata).
BASE_PACKAGES = (
    *("passwd", "ca-certificates", "netbase", "tzdata", "libssl3", "libffi8", "libsqlite3-0"),
    *("libbz2-1.0", "liblzma5", "zlib1g", "libexpat1", "libncursesw6", "libreadline8"),
    *("libuuid1", "libtirpc3", "libnsl2", "libcrypt1"),
)
# Left out of the copied interpreter: the test suite, static library, GUI modules, and this
# machine's own site-packages additions (only pip is kept, as in the official images).
PYTHON_EXCLUDES = (  # paths relative to the interpreter's prefix (fnmatch), or names
    "include",
    "share",
    "lib/python*/test",
    "lib/python*/config-*",
    "lib/python*/idlelib",
    "lib/python*/tkinter",
    "lib/python*/turtledemo",
    "lib/python*/lib-dynload/_tkinter*",
    "lib/python*/site-packages/*.pth",
)
STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{root}/storage"
runroot = "{root}/run"
"""
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{root}/tmp"
"""
TOOLS = ("podman", "runc", "mmdebstrap", "redis-server")


class Podman:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "storage.conf").write_text(STORAGE_CONF.format(root=root), encoding="utf-8")
        (root / "containers.conf").write_text(CONTAINERS_CONF.format(root=root), encoding="utf-8")
        self.env = {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
            "CONTAINERS_CONF": str(root / "containers.conf"),
        }

    def __call__(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode:
            pytest.fail(
                f"podman {' '.join(args[:3])} … failed ({result.returncode}):\n"
                f"{result.stdout[-4000:]}{result.stderr[-4000:]}",
                pytrace=False,
            )
        return result


def debian_release_and_mirror() -> tuple[str, str]:
    """The host's Debian release (the pyenv interpreter was built against its libraries) and
    the mirror apt uses."""
    release = ""
    for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
        if line.startswith("VERSION_CODENAME="):
            release = line.split("=", 1)[1].strip().strip('"')
    mirror = "http://deb.debian.org/debian"
    sources = sorted(Path("/etc/apt").glob("sources.list.d/*.sources"))
    for source in [Path("/etc/apt/sources.list"), *sources]:
        if source.is_file():
            found = re.search(r"(?m)^(?:URIs:\s*|deb\s+)(\S+?)/?\s", source.read_text())
            if found:
                mirror = found.group(1)
                break
    return release, mirror


def build_base_image(podman: Podman, python_version: str, work: Path) -> str:
    """Tag of a local stand-in for python:<version>-slim, built once per recipe."""
    interpreter = Path(require(interpreter_for(python_version), f"Python {python_version}"))
    prefix = interpreter.resolve().parent.parent
    release, mirror = debian_release_and_mirror()
    require(release, "a Debian host (mmdebstrap builds the base image from its release)")
    recipe = json.dumps([str(prefix), release, BASE_PACKAGES, PYTHON_EXCLUDES, 2])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    tag = f"localhost/template-test-python:{python_version}-{digest}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    python_root = work / "python-root"
    shutil.rmtree(python_root, ignore_errors=True)
    shutil.copytree(
        prefix, python_root, symlinks=True, ignore=_ignore_relative(prefix, PYTHON_EXCLUDES)
    )
    _relocate(python_root, str(prefix), "/usr/local")
    rootfs = work / "rootfs.tar"
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            f"--customize-hook=sync-in {python_root} /usr/local",
            '--customize-hook=chroot "$1" ldconfig',
            f'--customize-hook=chroot "$1" python{python_version} -c "import ssl, sqlite3, ctypes"',
            release,
            str(rootfs),
            mirror,
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    podman(
        "import",
        "--change",
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        "ENV LANG=C.UTF-8",
        "--change",
        'CMD ["python3"]',
        str(rootfs),
        tag,
    )
    rootfs.unlink()
    shutil.rmtree(python_root)
    return tag


def _ignore_relative(root: Path, patterns: tuple[str, ...]):
    """copytree's ignore: a pattern with a slash, or a top-level name, matches the path from
    the prefix; __pycache__ matches anywhere."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(root)
        return {
            name
            for name in names
            if name == "__pycache__"
            or any(fnmatch.fnmatch((rel / name).as_posix(), pattern) for pattern in patterns)
        }

    return ignore


def _relocate(root: Path, old: str, new: str) -> None:
    """Rewrite the interpreter's own prefix in its text files (script shebangs, sysconfig)."""
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if old.encode() in data and b"\0" not in data[:8192]:
            path.write_bytes(data.replace(old.encode(), new.encode()))


def offline_build_inputs(project: Path, uv: str, interpreter: str, work: Path) -> list[str]:
    """podman build --volume arguments that let the Dockerfile build without network."""
    dockerfile = (project / "Dockerfile").read_text(encoding="utf-8")
    uv_version = re.search(r"(?m)^ARG UV_VERSION=(\S+)$", dockerfile)
    assert uv_version, "the Dockerfile pins uv with ARG UV_VERSION"
    wheels, uv_cache = work / "wheels", work / "uv-cache"
    wheels.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_CACHE_DIR": str(uv_cache)}
    env.pop("PIP_FIND_LINKS", None)
    subprocess.run(
        [
            *(interpreter, "-m", "pip", "download", "--quiet", "--no-deps"),
            *("--only-binary", ":all:", "--dest", str(wheels), f"uv=={uv_version.group(1)}"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    # The same sync the Dockerfile runs, on the host: fills the cache with every locked
    # distribution and the build backend.
    subprocess.run(
        [uv, "sync", "--locked", "--no-dev", "--no-editable", "--python", interpreter],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=600,
        env={**env, "UV_PROJECT_ENVIRONMENT": str(work / "host-venv")},
    )
    (work / "pip.conf").write_text("[global]\nno-index = true\nfind-links = /wheels\n")
    (work / "uv.toml").write_text('offline = true\ncache-dir = "/uv-cache"\n')
    return [
        *("--volume", f"{wheels}:/wheels:ro"),
        *("--volume", f"{work / 'pip.conf'}:/etc/pip.conf:ro"),
        *("--volume", f"{work / 'uv.toml'}:/etc/uv/uv.toml:ro"),
        *("--volume", f"{uv_cache}:/uv-cache"),
    ]


def slow_tier_requested(config: pytest.Config) -> bool:
    """`-m slow` (or any marker expression naming slow without negating it), or
    TEMPLATE_TESTS_SLOW=1."""
    expression = config.getoption("markexpr") or ""
    named = re.search(r"(?<!not )\bslow\b", expression) is not None
    return named or os.environ.get("TEMPLATE_TESTS_SLOW") == "1"


@pytest.fixture
def prerequisites(request: pytest.FixtureRequest) -> None:
    """Opt-in: runs only when the slow tier is asked for (`-m slow` or TEMPLATE_TESTS_SLOW=1),
    because building the local base image needs a Debian mirror that a cold machine may not
    reach. When asked for, a missing tool fails under CI=true like any other prerequisite."""
    if not slow_tier_requested(request.config):
        pytest.skip("slow tier not requested (-m slow or TEMPLATE_TESTS_SLOW=1)")
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if os.geteuid() != 0:
        missing.append("root (the podman setup here is rootful)")
    for what in missing:
        require(False, what)


@pytest.fixture
def redis_url(prerequisites: None, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [
        *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "no", "--dir", str(tmp_path)),
    ]
    with running(command, lambda: accepts_connections(port), "redis accepts connections"):
        yield f"redis://127.0.0.1:{port}/0"


def http_get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_default_image_builds_and_runs(
    renderer, tmp_path: Path, redis_url: str, request: pytest.FixtureRequest
) -> None:
    uv = require(uv_binary(), "uv")
    combo = default_combination()
    python_version = str(combo.answers["python_version"])
    interpreter = require(interpreter_for(python_version), f"Python {python_version}")
    project = renderer(combo.data, tmp_path / "project")
    package = str(combo.answers["package_name"])
    subprocess.run(
        [uv, "lock", "--python", interpreter],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )

    CACHE.mkdir(parents=True, exist_ok=True)
    # A new podman configuration gets a new store: podman refuses a store made with other paths.
    config = hashlib.sha256((STORAGE_CONF + CONTAINERS_CONF).encode()).hexdigest()[:8]
    podman = Podman(CACHE / f"podman-{config}")
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one base-image build at a time
        started = time.perf_counter()
        base = build_base_image(podman, python_version, CACHE)
        base_seconds = time.perf_counter() - started
    volumes = offline_build_inputs(project, uv, interpreter, tmp_path / "offline")
    image = f"localhost/{combo.answers['project_slug']}:test-{tmp_path.name}"
    build = [
        *("build", "--network", "none", "--format", "docker", "--layers"),
        *("--build-arg", f"PYTHON_IMAGE={base}", *volumes, "--tag", image, str(project)),
    ]
    timings = {"base_image_s": round(base_seconds, 1)}
    for label in ("build_s", "cached_build_s"):
        started = time.perf_counter()
        podman(*build, timeout=600)
        timings[label] = round(time.perf_counter() - started, 1)

    try:
        config = json.loads(podman("image", "inspect", image).stdout)[0]
        timings["image_mb"] = round(config["Size"] / 1e6, 1)
        assert config["Config"]["User"] == "10001:10001"
        assert config["Config"]["StopSignal"] in {"SIGTERM", "15"}
        # podman reports the health check beside Config, Docker inside it
        health = config.get("Healthcheck") or config["Config"].get("Healthcheck") or {}
        assert "/livez" in " ".join(health.get("Test", [])), f"HEALTHCHECK lost: {health}"
        with object_storage(project, uv, interpreter) as storage_env:
            _run_and_stop(podman, image, package, redis_url, storage_env, timings)
    finally:
        request.node.user_properties.append(("container_image", timings))
        print(f"container image: {timings}")
        podman("rmi", "--force", image, check=False)


@contextlib.contextmanager
def object_storage(project: Path, uv: str, interpreter: str) -> Iterator[dict[str, str]]:
    """The default project stores files in S3, which production requires: moto's server from
    the project's own development environment, with one bucket."""
    subprocess.run(
        [uv, "sync", "--locked", "--python", interpreter],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = [str(project / ".venv/bin/python"), "-m", "moto.server"]
    moto += ["-H", "127.0.0.1", "-p", str(port)]
    with running(moto, lambda: answers_http(endpoint + "/moto-api/"), "moto answers", timeout=60):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(urllib.request.Request(endpoint + "/image-test", method="PUT"), timeout=10)
        yield {
            "STORAGE_BUCKET": "image-test",
            "STORAGE_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test-access-key",
            "AWS_SECRET_ACCESS_KEY": "test-secret-key",
            "AWS_REGION": "us-east-1",
        }


def _run_and_stop(
    podman: Podman,
    image: str,
    package: str,
    redis_url: str,
    storage_env: dict[str, str],
    timings: dict[str, float],
) -> None:
    # Checks run through `podman exec` in the service's container: podman 4.3 here takes 20 s
    # to notice that a short-lived container exited on its own.
    port = free_port()
    container = podman(
        *("run", "--detach", "--network", "host", "--read-only", "--read-only-tmpfs=false"),
        *("--health-interval", "disable"),
        *("--env", "HOST=127.0.0.1", "--env", f"PORT={port}"),
        *("--env", f"SECRET_KEY={secrets.token_urlsafe(48)}", "--env", f"STORE_URL={redis_url}"),
        *("--env", "SHUTDOWN_DRAIN_SECONDS=1", "--env", "SHUTDOWN_GRACE_SECONDS=5"),
        *(arg for name, value in storage_env.items() for arg in ("--env", f"{name}={value}")),
        image,
    ).stdout.strip()
    try:
        livez = f"http://127.0.0.1:{port}/livez"
        wait_until(lambda: answers_http(livez), "the container answers /livez", timeout=60)
        status, body = http_get(livez)
        assert status == 200, body
        status, body = http_get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200, f"/readyz {status}: {body}"
        top = podman("top", container, "huser", "pid", "args").stdout.splitlines()[1:]
        assert [line.strip().split(None, 2) for line in top] == [
            ["10001", "1", f"python -m {package} serve"]
        ], top
        health = podman("healthcheck", "run", container, check=False)
        assert health.returncode == 0, f"HEALTHCHECK failed: {health.stdout}{health.stderr}"
        contents = podman(
            *("exec", container, "python", "-c"),
            "import os, shutil; print(shutil.which('uv'), sorted(os.listdir('/app')),"
            " os.path.exists('/root/.cache'), os.access('/app/.venv', os.W_OK))",
        ).stdout.strip()
        assert contents == "None ['.venv'] False False", f"runtime stage: {contents}"
        timings["venv_mb"] = int(
            podman("exec", container, "du", "-sm", "/app/.venv").stdout.split()[0]
        )

        started = time.monotonic()
        podman("stop", "--time", "30", container, timeout=60)
        timings["sigterm_to_exit_s"] = round(time.monotonic() - started, 1)
        state = json.loads(podman("inspect", container).stdout)[0]["State"]
        output = podman("logs", container)
        logs = output.stdout + output.stderr
        assert state["ExitCode"] == 0, f"exit {state['ExitCode']} on SIGTERM:\n{logs[-3000:]}"
        assert '"signal": 15' in logs and '"stopped"' in logs, logs[-3000:]
        # drain 1 s + in-flight grace (nothing in flight): far below the 30 s before SIGKILL
        assert timings["sigterm_to_exit_s"] < 15, "the drain did not end in time"
    finally:
        podman("rm", "--force", container, check=False)
