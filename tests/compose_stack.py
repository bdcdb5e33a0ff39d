"""A rendered project's compose.yaml, started with podman-compose and driven from outside.

The Compose file is written for Docker Compose v2 and is used unchanged. Where podman-compose
(1.6.0) and podman 4.3 fall short, this harness does the work instead of the file:

- ``depends_on`` conditions: podman-compose skips ``service_healthy`` and runs a
  ``service_completed_successfully`` one-shot twice, and a plain ``up`` fails on dependency
  chains two deep. The harness starts each service alone (``up --no-deps``) in the order the
  Compose file's ``depends_on`` gives, waits for a healthy service by running its healthcheck
  (podman 4.3 never runs them on its own without systemd), and waits for a one-shot to exit 0
  before starting what depends on it, so each one-shot runs once.
- secrets from the environment (``secrets: X: environment: X``) are refused at run time by
  podman-compose: an override file passed with a second ``-f`` gives the same secret as a file.
  The same override adds the test's own settings (the demo login, one-second job ticks),
  as the cluster suite gives its replicas.
- name resolution: aardvark-dns 1.4 (Debian 12's podman network DNS) tears its sockets down and
  binds them again on every SIGHUP, which netavark sends whenever a container joins or leaves
  the network; a query that arrives meanwhile is lost and glibc retries only after 5 s, longer
  than the service's store and storage timeouts (measured here: 19 of 922,000 lookups stalled
  5 s, 4 of them failed, while 40 containers started beside them; later aardvark-dns
  releases keep their sockets across a reload). Docker's embedded DNS keeps its socket. So
  the harness gives every single-instance service a fixed address on the project network and
  every container a hosts entry for each of them, under the service's own name: the Compose
  file's names are still what the containers use, and only the balancer's discovery of the
  replicas (HAProxy's own resolver, which retries every second) goes through aardvark-dns.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from containers import Podman
from servers import free_port

PODMAN_COMPOSE_VERSION = "1.6.0"


def podman_compose_binary() -> str | None:
    return shutil.which("podman-compose")


class ComposeStack:
    def __init__(
        self,
        podman: Podman,
        project: Path,
        name: str,
        override: dict[str, Any],
        env: dict[str, str],
        log: Callable[[str], None] = print,
    ) -> None:
        self.podman = podman
        self.project = project
        self.name = name
        self.env = {**podman.env, **env}
        self.log = log
        self.compose = yaml.safe_load((project / "compose.yaml").read_text(encoding="utf-8"))
        self.override_path = project.parent / f"{name}-override.yaml"
        self.subnet: str | None = None
        self.addresses: dict[str, str] = {}
        self.write_override(override)
        self.started: list[str] = []
        self.events: list[tuple[float, str]] = []
        self.downed = False

    def write_override(self, override: dict[str, Any]) -> None:
        """The test's override, plus the harness's own: podman-compose honours
        deploy.replicas only beside an explicit ``mode: replicated`` (the Compose
        Specification's default), for ``up`` and ``down`` alike."""
        services = override.setdefault("services", {})
        for name, service in self.compose["services"].items():
            if "replicas" in (service.get("deploy") or {}):
                services.setdefault(name, {}).setdefault("deploy", {})["mode"] = "replicated"
        self.add_fixed_addresses(override)
        self.override_path.write_text(yaml.safe_dump(override), encoding="utf-8")

    def add_fixed_addresses(self, override: dict[str, Any]) -> None:
        """A subnet of its own for the project network, a fixed address for each
        single-instance service and a hosts entry for each of them in every container (see the
        module docstring: name resolution). Replicas take addresses from the upper half."""
        if self.subnet is None:
            self.subnet = self.free_subnet()
        prefix = self.subnet.rsplit(".", 1)[0]
        singles = [
            name
            for name, service in sorted(self.compose["services"].items())
            if "replicas" not in (service.get("deploy") or {})
        ]
        assert len(singles) < 50, "more single-instance services than fixed addresses"
        addresses = {name: f"{prefix}.{10 + index}" for index, name in enumerate(singles)}
        self.addresses = dict(addresses)
        hosts = [f"{name}:{address}" for name, address in addresses.items()]
        services = override["services"]
        for name in self.compose["services"]:
            service = services.setdefault(name, {})
            service["extra_hosts"] = hosts
            if name in addresses:
                service["networks"] = {"default": {"ipv4_address": addresses[name]}}
        network = {
            "subnet": f"{self.subnet}/24",
            "gateway": f"{prefix}.1",
            "ip_range": f"{prefix}.128/25",
        }
        override.setdefault("networks", {})["default"] = {"ipam": {"config": [network]}}

    def free_subnet(self) -> str:
        """A 10.123.N.0/24 no podman network of this store uses."""
        names = self.podman("network", "ls", "--format", "{{.Name}}").stdout.split()
        used = set()
        for name in names:
            for network in json.loads(self.podman("network", "inspect", name).stdout):
                used |= {s.get("subnet", "") for s in network.get("subnets") or []}
        for third in range(1, 255):
            if f"10.123.{third}.0/24" not in used:
                return f"10.123.{third}.0"
        raise AssertionError("no free 10.123.N.0/24 subnet for the project network")

    # --- podman-compose and podman ------------------------------------------------------------

    def compose_cmd(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        command = [
            *(str(podman_compose_binary()), "--in-pod", "false", "-p", self.name),
            *("-f", str(self.project / "compose.yaml"), "-f", str(self.override_path), *args),
        ]
        result = subprocess.run(
            command,
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode:
            raise AssertionError(
                f"podman-compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def containers(self, service: str | None = None, all_states: bool = True) -> list[str]:
        """Names of the project's containers (of one service), in replica order."""
        args = [
            "ps",
            "--format",
            "{{.Names}}",
            "--filter",
            f"label=io.podman.compose.project={self.name}",
        ]
        if all_states:
            args.append("--all")
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        names = self.podman(*args).stdout.split()
        return sorted(names, key=lambda n: (len(n), n))

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(self.podman("inspect", container).stdout)[0]

    def address(self, container: str) -> str:
        networks = self.inspect(container)["NetworkSettings"]["Networks"]
        return ",".join(sorted(n["IPAddress"] for n in networks.values()))

    def healthy(self, container: str) -> bool:
        return self.podman("healthcheck", "run", container, check=False, timeout=30).returncode == 0

    def exec_python(self, container: str, code: str, timeout: float = 30) -> str:
        return self.podman("exec", container, "python", "-c", code, timeout=timeout).stdout

    # --- dependency order ---------------------------------------------------------------------

    def order(self) -> list[str]:
        services = self.compose["services"]
        done: list[str] = []

        def visit(name: str, path: tuple[str, ...] = ()) -> None:
            assert name not in path, f"dependency cycle: {(*path, name)}"
            if name in done:
                return
            for dependency in services[name].get("depends_on") or {}:
                visit(dependency, (*path, name))
            done.append(name)

        for name in services:
            visit(name)
        return done

    def conditions(self, service: str) -> dict[str, str]:
        depends = self.compose["services"][service].get("depends_on") or {}
        if isinstance(depends, list):
            return dict.fromkeys(depends, "service_started")
        return {name: spec.get("condition", "service_started") for name, spec in depends.items()}

    def one_shot(self, service: str) -> bool:
        return str(self.compose["services"][service].get("restart", "no")) == "no"

    def has_healthcheck(self, service: str) -> bool:
        check = self.compose["services"][service].get("healthcheck")
        return bool(check) and not check.get("disable")

    def up(self, services: list[str] | None = None) -> None:
        """Every service (or the given ones), each after what its depends_on names is in the
        state the condition asks for."""
        for service in self.order():
            if services is not None and service not in services:
                continue
            waited = time.monotonic()
            for dependency, condition in self.conditions(service).items():
                self.wait_for(dependency, condition)
            started = time.monotonic()
            self.compose_cmd("up", "--detach", "--no-deps", service)
            self.events.append((time.time(), f"started {service}"))
            self.started.append(service)
            self.log(
                f"{self.name}: up {service} ({time.monotonic() - started:.1f} s, after "
                f"{started - waited:.1f} s waiting for its dependencies)"
            )

    def wait_for(self, service: str, condition: str, timeout: float = 120) -> None:
        containers = self.containers(service)
        assert containers, f"{service} was never started"
        deadline = time.monotonic() + timeout
        if condition == "service_completed_successfully":
            for container in containers:
                code = self.exit_code(container, deadline)
                if code != "0":
                    logs = self.podman("logs", container, check=False)
                    raise AssertionError(
                        f"one-shot {container}: exit code {code}:\n{logs.stdout[-3000:]}"
                        f"{logs.stderr[-3000:]}"
                    )
            return
        if condition == "service_healthy":
            assert self.has_healthcheck(service), (
                f"{service} is waited for as healthy but has no healthcheck"
            )
            pending = list(containers)
            while pending:
                pending = [c for c in pending if not self.healthy(c)]
                if pending and time.monotonic() > deadline:
                    logs = self.podman("logs", pending[0], check=False)
                    raise AssertionError(
                        f"{pending} not healthy after {timeout:.0f} s:\n"
                        f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
                    )
                if pending:
                    time.sleep(0.5)

    def exit_code(self, container: str, deadline: float) -> str:
        """The container's exit code once it has exited. Polled: podman 4.3's ``wait`` answered
        20 s late for a container that had already exited (measured on both one-shots)."""
        while True:
            state = self.inspect(container)["State"]
            if state["Status"] in ("exited", "stopped"):
                return str(state["ExitCode"])
            if time.monotonic() > deadline:
                return f"nothing: still {state['Status']}"
            time.sleep(0.2)

    def wait_healthy(self, container: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy(container):
            if time.monotonic() > deadline:
                logs = self.podman("logs", container, check=False)
                raise AssertionError(
                    f"{container} not healthy after {timeout:.0f} s:\n"
                    f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
                )
            time.sleep(0.5)

    def logs(self, container: str) -> list[dict[str, Any]]:
        """The container's JSON log lines."""
        output = self.podman("logs", container, check=False, timeout=60)
        entries = []
        for line in (output.stdout + output.stderr).splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    entries.append(json.loads(line))
        return entries

    def print_tails(self, lines: int = 25) -> None:
        """The last lines of every container of the project, for a failed check's report."""
        for container in self.containers():
            output = self.podman("logs", "--tail", str(lines), container, check=False, timeout=60)
            print(f"--- {container}: last {lines} lines ---")
            print((output.stdout + output.stderr).rstrip()[-6000:])

    # --- containers recreated by the checks ---------------------------------------------------

    def recreate(self, container: str, replace: dict[str, str] | None = None) -> None:
        """Remove the container and create it again from podman's record of its create
        command (the settings podman-compose gave it), with the given text replaced in its
        arguments and every hosts entry at the services' current addresses; then start it."""
        command = json.loads(
            self.podman("inspect", "--format", "{{json .Config.CreateCommand}}", container).stdout
        )
        verb = next(i for i, arg in enumerate(command) if arg in ("run", "create"))
        args = [arg for arg in command[verb + 1 :] if arg not in ("-d", "--detach")]
        for old, new in (replace or {}).items():
            assert any(old in arg for arg in args), f"no {old!r} in {container}'s create command"
            args = [arg.replace(old, new) for arg in args]
        # podman-compose passes each entry as ``--add-host NAME:ADDRESS``.
        for index, arg in enumerate(args[1:], start=1):
            name = arg.partition(":")[0]
            if args[index - 1] == "--add-host" and name in self.addresses:
                args[index] = f"{name}:{self.addresses[name]}"
        self.podman("rm", "--force", "--time", "30", container, timeout=60)
        self.podman("create", *args)
        self.podman("start", container)

    def move(self, service: str) -> str:
        """The single-instance service's (stopped) container created again at another
        address, and the name pointed there in every running container: what a restarted
        container or pod looks like to its clients (a new IP behind the same name)."""
        (container,) = self.containers(service)
        old = self.addresses[service]
        prefix, _, last = old.rpartition(".")
        used = {int(a.rpartition(".")[2]) for a in self.addresses.values()}
        new = f"{prefix}.{next(n for n in range(int(last) + 1, 128) if n not in used)}"
        self.addresses[service] = new
        self.recreate(container, {f"ip={old}": f"ip={new}"})
        # The hosts file podman bind-mounts into each container, written in place from the
        # host (the containers' own root filesystems are read-only).
        for other in self.containers(all_states=False):
            if other == container:
                continue
            hosts = Path(self.inspect(other)["HostsPath"])
            lines = hosts.read_text(encoding="utf-8").splitlines()
            moved = [
                f"{new}\t{service}" if line.split()[1:] == [service] else line for line in lines
            ]
            assert moved != lines, f"{other} has no hosts entry for {service}"
            with hosts.open("r+", encoding="utf-8") as file:
                file.write("\n".join(moved) + "\n")
                file.truncate()
        return new

    # --- down ---------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """``down --volumes``; returns what it left behind of the project (then removed)."""
        self.downed = True
        self.compose_cmd("down", "--volumes", "--timeout", "30", timeout=300)
        return self.leftovers(remove=True)

    def leftovers(self, remove: bool) -> list[str]:
        label = f"label=io.podman.compose.project={self.name}"
        left = [f"container {c}" for c in self.containers()]
        for kind in ("network", "volume"):
            names = self.podman(kind, "ls", "--filter", label, "--format", "{{.Name}}").stdout
            left += [f"{kind} {name}" for name in names.split()]
        if remove:
            for item in left:
                kind, _, name = item.partition(" ")
                command = ("rm", "--force") if kind == "container" else (kind, "rm", "--force")
                self.podman(*command, name, check=False)
        return left

    @contextlib.contextmanager
    def running(self) -> Iterator[ComposeStack]:
        """Up in dependency order; whatever happens, nothing of the project is left after."""
        try:
            self.up()
            yield self
        except BaseException:
            self.print_tails()
            raise
        finally:
            if not self.downed:
                with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                    self.compose_cmd("down", "--volumes", "--timeout", "5", timeout=300)
                self.leftovers(remove=True)


def publish_env() -> dict[str, str]:
    """Host ports for whatever the Compose file publishes (never the machine's own 5432/6379)."""
    return {
        name: str(free_port()) for name in ("HTTP_PORT", "MINIO_PORT", "GCS_PORT", "AZURITE_PORT")
    } | {"APP_REPLICAS": "3", "PATH": os.environ.get("PATH", "")}
