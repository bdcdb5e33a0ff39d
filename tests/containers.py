"""Container builds shared by the tiers that run the service in podman: the podman wrapper with
its own storage and configuration, the local base image that stands in for python:<version>-slim,
and the offline inputs that let the rendered Dockerfile build with ``--network none``.

The base image, the uv cache and podman's storage are kept between runs under
``$TEMPLATE_TESTS_CONTAINER_CACHE`` (default ``~/.cache/cluster-service-template/container-tests``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import interpreter_for, require

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


def podman_for_tests() -> Podman:
    """The podman of these tests, with a store per configuration: podman refuses a store made
    with other paths."""
    CACHE.mkdir(parents=True, exist_ok=True)
    config = hashlib.sha256((STORAGE_CONF + CONTAINERS_CONF).encode()).hexdigest()[:8]
    return Podman(CACHE / f"podman-{config}")
