"""Local stand-ins for the images the rendered compose.yaml names.

No container registry is reachable here, so every image the Compose file pulls (HAProxy, Redis,
Valkey, Memcached, PostgreSQL, MinIO and its client, the Cloud Storage emulator, Azurite and the
Azure CLI, BusyBox) is built locally and tagged with the exact name the Compose file uses:

- one root filesystem made with mmdebstrap from the host's Debian release, holding the Debian
  packages of the servers (redis-server, memcached, haproxy, postgresql, nodejs, netcat, wget,
  busybox, python3), the PyPI packages the rendered projects' tests use (moto for S3,
  gcp-storage-emulator, azure-storage-blob, boto3; installed on the host for the image's Python)
  and the npm package azurite copied from the host's global npm root;
- small shims where a tool has no Debian package: ``minio`` (moto's server), ``mc`` (alias, mb,
  ready over boto3/HTTP), ``az storage container create`` (azure-storage-blob),
  ``valkey-server``/``valkey-cli`` (Redis: Valkey has no Debian package and is wire-compatible),
  ``docker-entrypoint.sh`` for PostgreSQL (creates POSTGRES_USER/PASSWORD/DB on a new volume);
- one thin image per name: the shared root filesystem with the ENTRYPOINT/CMD/ENV of the
  original image, so the Compose file's commands and healthchecks run unchanged.

Everything is cached in podman's store under the container cache: a cold build takes about a
minute and a half, a warm one nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from containers import Podman, debian_release_and_mirror
from helpers import interpreter_for, require, uv_binary

PACKAGES = (
    *("redis-server", "memcached", "haproxy", "postgresql", "netcat-openbsd", "wget"),
    *("busybox", "python3", "python-is-python3", "nodejs", "ca-certificates", "procps"),
)
# The versions the rendered projects' own tests use (pyproject.toml.jinja's dev dependencies).
PYPI = (
    "moto[s3]>=5.1,<6",
    "flask",
    "flask-cors",
    "boto3",
    "gcp-storage-emulator>=2026.7.19,<2028",
    "azure-storage-blob>=12.19,<13",
)
AZURITE_VERSION = "3.35.0"

MINIO = """\
#!/usr/bin/python3
# minio server DIR --address :PORT -> moto's S3 server (in memory), stops on SIGTERM.
import signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
args = sys.argv[1:]
assert args[:1] == ["server"], args
port = args[args.index("--address") + 1].rpartition(":")[2] if "--address" in args else "9000"
from moto.server import main
main(["-H", "0.0.0.0", "-p", port])
"""
MC = """\
#!/usr/bin/python3
# The three mc commands the Compose file uses: alias set, mb --ignore-existing, ready.
import json, os, sys, urllib.request
CONFIG = os.path.expanduser("~/.mc-aliases.json")
args = sys.argv[1:]
if args[:2] == ["alias", "set"]:
    name, url, user, password = args[2:6]
    aliases = json.load(open(CONFIG)) if os.path.exists(CONFIG) else {}
    aliases[name] = [url, user, password]
    json.dump(aliases, open(CONFIG, "w"))
    print(f"Added `{name}` successfully.")
elif args[:1] == ["mb"]:
    target = [a for a in args[1:] if not a.startswith("-")][0]
    name, _, bucket = target.partition("/")
    url, user, password = json.load(open(CONFIG))[name]
    import boto3
    s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=user,
                      aws_secret_access_key=password, region_name="us-east-1")
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        if "--ignore-existing" not in args:
            raise
    print(f"Bucket created successfully `{target}`.")
elif args[:1] == ["ready"]:
    try:
        urllib.request.urlopen("http://127.0.0.1:9000/", timeout=2)
    except urllib.error.HTTPError:
        pass
    print("The cluster is ready")
else:
    sys.exit(f"mc stand-in: unsupported {args}")
"""
AZ = """\
#!/usr/bin/python3
# az storage container create --name N --connection-string S
import sys
args = sys.argv[1:]
assert args[:3] == ["storage", "container", "create"], args
name = args[args.index("--name") + 1]
connection = args[args.index("--connection-string") + 1]
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
try:
    BlobServiceClient.from_connection_string(connection).create_container(name)
    print('{"created": true}')
except ResourceExistsError:
    print('{"created": false}')
"""
GCS = """\
#!/usr/bin/python3
# The emulator's own command line, stopping on SIGTERM (as PID 1 it would ignore it).
import signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
from gcp_storage_emulator.__main__ import main
sys.exit(main())
"""
POSTGRES_ENTRYPOINT = """\
#!/bin/sh
# The official image's contract: POSTGRES_USER/PASSWORD/DB create the role and database on a
# new data directory; then PostgreSQL runs as PID 1 (fast shutdown on SIGTERM).
set -e
PGDATA=${PGDATA:-/var/lib/postgresql/data}
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s\\n' "${POSTGRES_PASSWORD:?}" > /tmp/pwfile
    chown postgres /tmp/pwfile
    $as_postgres initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --pwfile=/tmp/pwfile \\
        --auth-local=trust --auth-host=scram-sha-256 --no-sync >/dev/null
    rm /tmp/pwfile
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    $as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    user=${POSTGRES_USER:-postgres}
    $as_postgres createdb -U "$user" "${POSTGRES_DB:-$user}"
    $as_postgres pg_ctl -D "$PGDATA" -w stop >/dev/null
fi
exec $as_postgres "$@" -D "$PGDATA" -c listen_addresses='*'
"""
# The official Redis/Valkey images' entrypoint: without a configuration file the server would
# start in protected mode and refuse every client from another container.
REDIS_ENTRYPOINT = """\
#!/bin/sh
case "$1" in
    redis-server|valkey-server)
        case "$2" in *.conf) ;; *) set -- "$@" --protected-mode no ;; esac ;;
esac
exec "$@"
"""
SHIMS = {
    "redis-entrypoint.sh": REDIS_ENTRYPOINT,
    "minio": MINIO,
    "mc": MC,
    "az": AZ,
    "gcp-storage-emulator": GCS,
    "docker-entrypoint.sh": POSTGRES_ENTRYPOINT,
    "valkey-server": '#!/bin/sh\nexec redis-server "$@"\n',
    "valkey-cli": '#!/bin/sh\nexec redis-cli "$@"\n',
    "azurite-blob": (
        '#!/bin/sh\nexec node /usr/local/lib/node_modules/azurite/dist/src/blob/main.js "$@"\n'
    ),
}
PATH = "/usr/local/pgbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# name in compose.yaml -> Containerfile lines after FROM (the original image's contract)
IMAGES = {
    "docker.io/library/haproxy:3.2-alpine": [
        'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]'
    ],
    "docker.io/library/redis:7.4-alpine": [
        'ENTRYPOINT ["redis-entrypoint.sh"]',
        'CMD ["redis-server"]',
    ],
    "docker.io/valkey/valkey:8.1-alpine": [
        'ENTRYPOINT ["redis-entrypoint.sh"]',
        'CMD ["valkey-server"]',
    ],
    # The official image runs as its own user (memcached refuses root without -u).
    "docker.io/library/memcached:1.6-alpine": ["USER memcache", 'CMD ["memcached"]'],
    "docker.io/library/postgres:17-alpine": [
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        'CMD ["postgres"]',
        "STOPSIGNAL SIGINT",
    ],
    "docker.io/minio/minio:RELEASE.2025-04-22T22-12-26Z": [
        'ENTRYPOINT ["minio"]',
        'CMD ["server", "/data"]',
    ],
    "docker.io/minio/mc:RELEASE.2025-04-16T18-13-26Z": ['ENTRYPOINT ["mc"]'],
    "docker.io/oittaa/gcp-storage-emulator:v2026.07.19": [
        "ENV STORAGE_BASE=/ STORAGE_DIR=storage",
        'ENTRYPOINT ["gcp-storage-emulator"]',
        'CMD ["start", "--host=0.0.0.0", "--port=8080"]',
    ],
    "mcr.microsoft.com/azure-storage/azurite:3.35.0": ['CMD ["azurite-blob"]'],
    "mcr.microsoft.com/azure-cli:2.70.0": ['CMD ["az"]'],
    "docker.io/library/busybox:1.37": ['CMD ["sh"]'],
}


def _azurite_root() -> Path:
    npm_root = subprocess.run(
        ["npm", "root", "-g"], capture_output=True, text=True, check=False
    ).stdout.strip()
    path = Path(npm_root) / "azurite"
    require(path.is_dir() or None, f"azurite@{AZURITE_VERSION} installed with npm -g")
    version = json.loads((path / "package.json").read_text())["version"]
    assert version == AZURITE_VERSION, f"npm -g holds azurite {version}, not {AZURITE_VERSION}"
    return path


def build_standins(podman: Podman, work: Path) -> dict[str, str]:
    """Builds (once; cached in podman's store) every stand-in image; returns name -> image id."""
    release, mirror = debian_release_and_mirror()
    recipe = json.dumps([release, PACKAGES, PYPI, AZURITE_VERSION, SHIMS, PATH, 1])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    base = f"localhost/template-test-compose-standins:{digest}"
    if podman("image", "exists", base, check=False).returncode != 0:
        _build_root(podman, base, release, mirror, work)
    ids = {}
    for name, lines in IMAGES.items():
        tag_digest = hashlib.sha256(json.dumps([base, lines]).encode()).hexdigest()[:12]
        label = f"template-test-standin={tag_digest}"
        found = podman(
            *("images", "--filter", f"label={label}", "--format", "{{.ID}}"), check=False
        ).stdout.split()
        if not found:
            context = work / "standin-context"
            context.mkdir(parents=True, exist_ok=True)
            containerfile = "\n".join([f"FROM {base}", f"LABEL {label}", *lines]) + "\n"
            (context / "Containerfile").write_text(containerfile)
            podman("build", "--network", "none", "--tag", name, str(context), timeout=120)
        else:
            podman("tag", found[0], name)
        ids[name] = podman("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
    return ids


def _build_root(podman: Podman, tag: str, release: str, mirror: str, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    site = work / "standin-site"
    shutil.rmtree(site, ignore_errors=True)
    uv = require(uv_binary(), "uv")
    python = require(interpreter_for("3.11"), "Python 3.11 (the Debian image's Python)")
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", python, "--target", str(site), *PYPI],
        check=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    shims = work / "standin-shims"
    shutil.rmtree(shims, ignore_errors=True)
    shims.mkdir()
    for name, text in SHIMS.items():
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    rootfs = work / "standins.tar"
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            # no server starts inside the chroot, and no cluster is created for PostgreSQL
            '--essential-hook=mkdir -p "$1/etc/postgresql-common/createcluster.d"',
            "--essential-hook=echo create_main_cluster = false > "
            '"$1/etc/postgresql-common/createcluster.d/no-main.conf"',
            '--customize-hook=mkdir -p "$1/usr/local/lib/python3.11/dist-packages"'
            ' "$1/usr/local/lib/node_modules/azurite"',
            f"--customize-hook=sync-in {site} /usr/local/lib/python3.11/dist-packages",
            f"--customize-hook=sync-in {shims} /usr/local/bin",
            f"--customize-hook=sync-in {_azurite_root()} /usr/local/lib/node_modules/azurite",
            '--customize-hook=chroot "$1" sh -c "ln -s /usr/lib/postgresql/*/bin /usr/local/pgbin"',
            '--customize-hook=chroot "$1" python -c "import moto.server, gcp_storage_emulator, '
            'azure.storage.blob, boto3"',
            release,
            str(rootfs),
            mirror,
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    podman(
        *("import", "--change", f"ENV PATH={PATH}", "--change", "ENV LANG=C.UTF-8"),
        *(str(rootfs), tag),
        timeout=300,
    )
    rootfs.unlink()
    shutil.rmtree(site)
    shutil.rmtree(shims)
