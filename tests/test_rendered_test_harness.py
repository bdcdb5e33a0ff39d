"""Rules that keep the rendered projects' own test suites short (docs/service/index.md).

Static checks over template/tests, so they hold for every combination: every test server is
started and awaited by the one helper in tests/support/server.py, and no rendered test sleeps
for seconds where it could wait for a condition or advance a clock.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
from helpers import REPO_ROOT

pytestmark = [pytest.mark.tier1, pytest.mark.fast]

RENDERED_TESTS = Path(os.environ.get("RENDERED_TESTS_DIR", REPO_ROOT / "template" / "tests"))
SUPPORT = RENDERED_TESTS / "support"
# The helper itself, where the one start-and-wait loop lives.
HELPER = SUPPORT / "server.py"
# Waiting code a server module or fixture plugin would need to start a server by itself.
OWN_WAIT = re.compile(r"\bwait_until\(|\btime\.sleep\(|\btime\.monotonic\(\)|\bpg_ctl\b.*\bstart\b")
# A fixed sleep of this many seconds or more is a test waiting out a clock it should control;
# one of HANG_SECONDS or more stands in for a dependency that never answers (the code under
# test must time out first, so no test waits for it).
LONGEST_FIXED_SLEEP_SECONDS = 2.0
HANG_SECONDS = 600
FIXED_SLEEP = re.compile(r"\b(?:time|asyncio)\.sleep\(\s*([0-9]+(?:\.[0-9]*)?)\s*\)")


def rendered_name(path: Path) -> str:
    """The file name a source renders to when it is selected (``{% if ... %}framework.py{%
    endif %}`` is ``framework.py``), without the template suffix."""
    return re.sub(r"\{%.*?%\}", "", path.name).removesuffix(".jinja")


def python_sources(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and rendered_name(path).endswith(".py")
    )


def server_starters() -> list[Path]:
    """The modules that start test servers: store, storage and PostgreSQL helpers, the fixture
    plugins and the conftest that start the service."""
    names = ("_server.py", "_fixtures.py.jinja", "_fixtures.py")
    found = [p for p in python_sources(SUPPORT) if p.name.endswith(names) and p != HELPER]
    return [*found, RENDERED_TESTS / "conftest.py.jinja"]


def test_every_test_server_is_started_through_the_one_helper() -> None:
    starters = server_starters()
    assert len(starters) >= 8, starters  # the helpers are where this test expects them
    own_loops = {
        str(path.relative_to(RENDERED_TESTS)): lines
        for path in starters
        if (lines := [s.strip() for s in path.read_text().splitlines() if OWN_WAIT.search(s)])
    }
    assert own_loops == {}, (
        "start servers with start_process() or Services of tests/support/server.py, "
        f"not a wait loop of their own: {own_loops}"
    )
    helper = HELPER.read_text()
    assert "def start_process(" in helper and "class Services" in helper


def test_rendered_tests_sleep_for_no_whole_seconds() -> None:
    long_sleeps = [
        f"{path.relative_to(RENDERED_TESTS)}:{number}: {line.strip()}"
        for path in python_sources(RENDERED_TESTS)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if (match := FIXED_SLEEP.search(line))
        and LONGEST_FIXED_SLEEP_SECONDS <= float(match.group(1)) < HANG_SECONDS
    ]
    assert long_sleeps == [], (
        "wait for a condition (wait_until), advance an injected clock or shorten the timeout "
        f"under test instead of sleeping: {long_sleeps}"
    )


def test_every_service_process_gets_its_own_internal_port() -> None:
    """A service started with a free PORT but the default ADMIN_PORT collides with any other
    service process on the machine (the parser pair of one module, or another project's suite
    running beside it in CI): every environment that sets PORT sets ADMIN_PORT too."""
    sources = python_sources(RENDERED_TESTS) + python_sources(REPO_ROOT / "template" / "benchmarks")
    missing = [
        f"{path.relative_to(REPO_ROOT)}:{number}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"""["']PORT["']\s*:\s*str\(""", line)
        and "ADMIN_PORT"
        not in "\n".join(path.read_text(encoding="utf-8").splitlines()[number - 3 : number + 3])
    ]
    assert not missing, f"PORT set without ADMIN_PORT next to it: {missing}"


# httpx calls that build a client, and so a TLS context, unless given one or an in-process
# transport.
HTTPX_CLIENT_CALLS = {"get", "post", "put", "patch", "delete", "head", "request", "stream"}
HTTPX_CLIENT_CLASSES = {"Client", "AsyncClient"}


def _parsed(path: Path) -> ast.Module:
    """A template module as Python: the answers it names become plain identifiers."""
    return ast.parse(re.sub(r"\{\{\s*(\w+)\s*\}\}", r"\1", path.read_text()), str(path))


def test_every_http_client_of_the_tests_reuses_one_tls_context() -> None:
    """httpx builds a TLS context per client, loading the CA bundle (about 30 ms of CPU), even for
    loopback http:// URLs: a test helper polling for readiness spent more CPU on that than the
    server it waited for. Every client the rendered tests make passes the shared TLS_CONTEXT of
    tests/support/server.py (or an in-process transport, which needs none)."""
    offenders = []
    for path in python_sources(RENDERED_TESTS):
        for node in ast.walk(_parsed(path)):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "httpx2"
                and node.func.attr in HTTPX_CLIENT_CALLS | HTTPX_CLIENT_CLASSES
            ):
                continue
            given = {keyword.arg for keyword in node.keywords}
            if not given & {"verify", "transport"}:
                offenders.append(f"{path.relative_to(RENDERED_TESTS)}:{node.lineno}")
    assert offenders == [], f"pass verify=TLS_CONTEXT (tests/support/server.py): {offenders}"
