"""The tier 5 harness's override (tests/compose_stack.py), checked on a rendered compose.yaml
without containers: each single-instance service gets a fixed address on a subnet no other
network uses, the replicas do not, and every host name a service's settings connect to is a
hosts entry in every container, so no connection of a service depends on the container
network's DNS (podman's aardvark-dns 1.4 drops queries while containers start and stop)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from combinations import answer_space
from compose_stack import ComposeStack

pytestmark = [pytest.mark.tier1, pytest.mark.fast]


class FakePodman:
    """Answers the two podman calls the override needs: one network already on 10.123.1.0/24."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}

    def __call__(self, *args: str, **_: Any) -> subprocess.CompletedProcess[str]:
        if args[:2] == ("network", "ls"):
            output = "podman\nearlier_default\n"
        elif args[:2] == ("network", "inspect"):
            subnet = "10.88.0.0/16" if args[2] == "podman" else "10.123.1.0/24"
            output = json.dumps([{"subnets": [{"subnet": subnet}]}])
        else:
            raise AssertionError(f"unexpected podman call {args}")
        return subprocess.CompletedProcess(["podman", *args], 0, output, "")


def connected_hosts(service: dict[str, Any]) -> set[str]:
    """Host names in the service's URL-valued settings (store, database, storage endpoint)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    hosts = set()
    for value in environment.values():
        if isinstance(value, str) and "://" in value:
            host = urlsplit(value).hostname
            if host and not host.replace(".", "").isdigit() and host != "localhost":
                hosts.add(host)
    return hosts


@pytest.mark.parametrize(
    "overrides",
    [{"database": "postgresql"}, {"storage_provider": "gcs", "scheduler": "celery"}],
    ids=["postgresql-s3", "gcs-celery"],
)
def test_every_connection_resolves_without_the_network_dns(
    renderer, tmp_path: Path, overrides: dict[str, Any]
) -> None:
    data = {**answer_space().default_combination().data, **overrides}
    project = renderer(data, tmp_path / "project")
    stack = ComposeStack(FakePodman(), project, "t5", {}, {}, log=lambda _: None)  # type: ignore[arg-type]
    override = yaml_load(stack.override_path)
    services = stack.compose["services"]

    subnet = ipaddress.ip_network(override["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert str(subnet) == "10.123.2.0/24", "the subnet an existing network uses was taken"
    dynamic = ipaddress.ip_network(override["networks"]["default"]["ipam"]["config"][0]["ip_range"])
    fixed = {
        name: ipaddress.ip_address(spec["networks"]["default"]["ipv4_address"])
        for name, spec in override["services"].items()
        if "networks" in spec
    }
    replicated = {n for n, s in services.items() if "replicas" in (s.get("deploy") or {})}
    assert "app" in replicated
    assert set(fixed) == set(services) - replicated
    assert len(set(fixed.values())) == len(fixed), "two services share an address"
    assert all(a in subnet and a not in dynamic for a in fixed.values()), fixed

    hosts_entries = {f"{name}:{address}" for name, address in fixed.items()}
    for name in services:
        assert set(override["services"][name]["extra_hosts"]) == hosts_entries, name
    # The test would prove nothing if the settings named no dependency by host.
    named = set().union(*(connected_hosts(s) for s in services.values() if "environment" in s))
    assert named, "no service setting names a host"
    assert named <= set(fixed), f"hosts reached through DNS only: {named - set(fixed)}"


def yaml_load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


class RecordedStack:
    """What check_one_shots reads of a started stack: the Compose file and podman's states."""

    def __init__(self, compose: dict[str, Any], states: dict[str, dict[str, Any]]) -> None:
        self.compose = compose
        self.states = states

    def one_shot(self, service: str) -> bool:
        return str(self.compose["services"][service].get("restart", "no")) == "no"

    def containers(self, service: str) -> list[str]:
        return sorted(c for c in self.states if c.rsplit("_", 1)[0] == service)

    def inspect(self, container: str) -> dict[str, Any]:
        return {"State": self.states[container]}


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "undeclared"])
def test_a_replica_started_before_migrate_ended_is_reported(declared: bool) -> None:
    """The one-shot check reads when containers ran, not what depends_on declares: a replica
    that started while migrate still ran fails it even when the Compose file never asked for
    the order (the defect the check exists for)."""
    from test_tier5_compose import StackReport, check_one_shots

    app: dict[str, Any] = {"image": "svc:local", "restart": "unless-stopped"}
    if declared:
        app["depends_on"] = {"migrate": {"condition": "service_completed_successfully"}}
    compose = {"services": {"app": app, "migrate": {"image": "svc:local", "restart": "no"}}}

    def state(started: str, finished: str = "", running: bool = True) -> dict[str, Any]:
        status = "running" if running else "exited"
        return {"StartedAt": started, "FinishedAt": finished, "ExitCode": 0} | {
            "Running": running,
            "Status": status,
        }

    migrate = state("2026-01-01T00:00:01Z", "2026-01-01T00:00:05Z", running=False)
    in_order = {"migrate_1": migrate, "app_1": state("2026-01-01T00:00:06Z")}
    check_one_shots(RecordedStack(compose, in_order), StackReport(project="p"))  # type: ignore[arg-type]
    early = {"migrate_1": migrate, "app_1": state("2026-01-01T00:00:03Z")}
    with pytest.raises(AssertionError, match="app_1 started before migrate ended"):
        check_one_shots(RecordedStack(compose, early), StackReport(project="p"))  # type: ignore[arg-type]
