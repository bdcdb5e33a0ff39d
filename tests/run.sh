#!/usr/bin/env bash
# The template's whole test suite, from a fresh machine: installs what is missing, then runs every tier.
# Usage: bash tests/run.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
export UV_PYTHON_DOWNLOADS=never
# Python caches compiled bytecode unless this is set (machine images and dev containers often
# set it). The tiers start rendered services as processes thousands of times; without the cache
# each start compiles every module it imports again (measured: 1.8 s of CPU instead of 1.0 s for
# the default service). Rendered suites drop it for their own processes too (tests/conftest.py).
unset PYTHONDONTWRITEBYTECODE

# uv as a standalone binary, outside pyenv's shims: rendered projects carry a .python-version file,
# which pyenv would otherwise obey by switching to an interpreter that has no uv.
if ! command -v uv >/dev/null 2>&1 || [[ "$(command -v uv)" == */shims/* ]]; then
    uv_home="${XDG_DATA_HOME:-$HOME/.local/share}/uv-standalone"
    python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$uv_home" uv
    export PATH="$uv_home/bin:$PATH"
fi

# Debian packages the tests use; installed only when missing.
# The stack benchmark (tests/test_benchmark_stack.py) loads the service with wrk.
debian_packages=(git redis-server memcached postgresql haproxy shellcheck wrk)
missing=()
for package in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# checkov (deployment checks of tier 1) in its own environment: it pins old libraries.
export PATH="$HOME/.local/bin:$PATH"
command -v checkov >/dev/null 2>&1 || uv tool install --quiet 'checkov==3.3.30'

# Azurite (Azure Blob emulator) for the storage_provider=azure projects; 3.37+ needs Node 22.
if ! command -v azurite-blob >/dev/null 2>&1; then
    if ! command -v npm >/dev/null 2>&1; then
        sudo_cmd=()
        [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
        "${sudo_cmd[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends nodejs npm
    fi
    sudo_npm=()
    [[ $(id -u) -eq 0 ]] || sudo_npm=(sudo)
    "${sudo_npm[@]}" npm install -g --silent azurite@3.35.0
fi

# Tier 5 runs the rendered Compose stack in containers: rootful podman, the tools that build
# the stand-in images, and podman-compose (docs/testing.md, "Tier 5").
container_packages=(podman runc fuse-overlayfs uidmap mmdebstrap netavark aardvark-dns iptables)
missing=()
for package in "${container_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v podman-compose >/dev/null 2>&1 || uv tool install --quiet 'podman-compose==1.6.0'

# The dev environment on Python 3.12 (pyenv's interpreter when there is one).
python=$(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.12*/bin/python3.12 2>/dev/null | tail -n 1 || true)
uv sync --frozen --python "${python:-python3.12}"
setup_seconds=$SECONDS

# Static tiers and updates (every combination, refusals, interactive, docs, tier 4) in one
# run on two workers, one test module per worker (--dist loadfile): tier 1's checks and tier 4's
# updates are mostly single-threaded, so they overlap instead of queueing. Runtime tiers: each combination of the covering array installs
# and runs its own suite (2); the cluster suite of a few projects, and its failure on broken
# clusters (3). Then tier 5: the rendered Compose stack built and started in containers. Every
# run always happens; the worst exit code is the verdict. The slow tier is run on request only
# (docs/testing.md says why).
tier_times=$(mktemp)
export TIER_TIMES_FILE="$tier_times"
phase_start=$SECONDS
status=0
# The template's own Python (tests, hooks) passes the linters its pre-commit hooks run.
uv run ruff check . || status=1
uv run ruff format --check . || status=1
uv run pytest -m "not tier2 and not tier3 and not tier5 and not bench" -n 2 --dist loadfile "$@" || status=$?
static_seconds=$((SECONDS - phase_start))
phase_start=$SECONDS
runtime_status=0
# Two projects at a time on two cores, each suite with a pytest-xdist worker per core as its
# README runs it: a suite waits on its servers and processes a quarter of its time or more, and
# its second worker fills those waits (docs/testing.md).
uv run pytest -m "tier2 or tier3" -n 2 "$@" || runtime_status=$?
runtime_seconds=$((SECONDS - phase_start))
((status)) || status=$runtime_status
# Tier 5 and the stack benchmark alone, after the others: beside tiers 2 and 3 the two cores are
# saturated, and the stack's timings (first requests, ticks) and the benchmark's CPU per request
# (one core for the server, one for wrk) would measure the load instead of the service.
phase_start=$SECONDS
containers_status=0
uv run pytest -m "tier5 or bench" -n 0 "$@" || containers_status=$?
containers_seconds=$((SECONDS - phase_start))
((status)) || status=$containers_status

# One table for the whole run, so drift in any tier is seen early.
printf '\n%-40s %7s %7s %10s\n' "time per tier (2 cores)" tests failed "wall (s)"
printf '%-40s %7s %7s %10s\n' "set-up (installs)" - - "$setup_seconds"
sort "$tier_times" | awk -F'\t' '{ printf "%-40s %7s %7s %10s\n", $1, $2, $3, $4 }'
printf '%-40s %7s %7s %10s\n' "static run (tiers 1 and 4, rest, -n 2)" - - "$static_seconds"
printf '%-40s %7s %7s %10s\n' "runtime run (tiers 2 and 3, -n 2)" - - "$runtime_seconds"
printf '%-40s %7s %7s %10s\n' "serial run (tier 5, bench, one worker)" - - "$containers_seconds"
printf '%-40s %7s %7s %10s\n' "whole run" - - "$SECONDS"
rm -f "$tier_times"
exit "$status"
