"""The chart and Compose keep the internal port (ADMIN_PORT: metrics, admin routes) inside: its
own ClusterIP Service exposes it, the NetworkPolicy admits only the scraper to it, the Ingress
never routes to it, the scrape config (annotations, ServiceMonitor) names it, and Compose's
balancer balances the public port only."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from combinations import default_combination
from deploy_checks import Artifacts, check_compose, internal_port_invariants, render_chart

pytestmark = [pytest.mark.tier1, pytest.mark.fast]

INGRESS_ON = {"ingress": {"enabled": True}}


@pytest.fixture(scope="module")
def artifacts(renderer, tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    project = renderer(default_combination().data, tmp_path_factory.mktemp("internal") / "p")
    return Artifacts.find(project)


@pytest.fixture(scope="module")
def chart(artifacts: Artifacts) -> Path:
    assert artifacts.chart is not None
    return artifacts.chart


def test_compose_balances_the_public_port_only(artifacts: Artifacts, tmp_path: Path) -> None:
    assert artifacts.compose and artifacts.haproxy
    app = yaml.safe_load(artifacts.compose.read_text())["services"]["app"]
    assert "ports" not in app  # nothing published: only the balancer and the network reach it
    assert app["environment"]["ADMIN_PORT"] != app["environment"]["PORT"]
    assert check_compose(str(artifacts.compose), str(artifacts.haproxy)) == []
    cfg = tmp_path / "haproxy.cfg"
    admin_port = app["environment"]["ADMIN_PORT"]
    cfg.write_text(artifacts.haproxy.read_text() + f"    server admin app:{admin_port}\n")
    problems = check_compose(str(artifacts.compose), str(cfg))
    assert any("routes to app:ADMIN_PORT" in p for p in problems), problems


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def web_of(kinds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    deployment = next(
        d
        for d in kinds["Deployment"]
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "web"
    )
    return deployment["spec"]["template"]["spec"]["containers"][0]


def config_of(kinds: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    return next(cm["data"] for cm in kinds["ConfigMap"] if "ADMIN_PORT" in cm.get("data", {}))


def test_the_internal_port_is_exposed_to_the_cluster_and_never_routed(chart: Path) -> None:
    kinds = by_kind(render_chart(chart, INGRESS_ON))
    assert internal_port_invariants(kinds, web_of(kinds), config_of(kinds)) == []
    ports = {s["metadata"]["name"]: s["spec"]["ports"] for s in kinds["Service"]}
    internal = [n for n, p in ports.items() if any(x["targetPort"] == "admin" for x in p)]
    public = [n for n, p in ports.items() if any(x["targetPort"] == "http" for x in p)]
    assert len(internal) == 1 and len(public) == 1 and internal != public, ports
    routed = {
        (path["backend"]["service"]["name"], path["backend"]["service"]["port"]["name"])
        for rule in kinds["Ingress"][0]["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert routed == {(public[0], "http")}
    rules = kinds["NetworkPolicy"][0]["spec"]["ingress"]
    admitted = {rule["ports"][0]["port"]: rule["from"] for rule in rules}
    assert set(admitted) == {"http", "admin"}
    assert admitted["admin"] != admitted["http"]  # the scraper, not the ingress controller


def test_scrape_config_names_the_internal_port(chart: Path) -> None:
    kinds = by_kind(render_chart(chart, {}))
    annotations = next(iter(kinds["Deployment"]))["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == config_of(kinds)["ADMIN_PORT"]
    assert "ServiceMonitor" not in kinds  # needs the operator's CRDs: opt in
    kinds = by_kind(render_chart(chart, {"metrics": {"serviceMonitor": {"enabled": True}}}))
    monitor = kinds["ServiceMonitor"][0]["spec"]
    assert monitor["endpoints"][0]["port"] == "admin"
    selected = [
        s
        for s in kinds["Service"]
        if all(
            s["metadata"]["labels"].get(k) == v
            for k, v in monitor["selector"]["matchLabels"].items()
        )
    ]
    assert [p["name"] for s in selected for p in s["spec"]["ports"]] == ["admin"]


def test_the_check_reports_an_ingress_or_a_service_that_publishes_the_internal_port(
    chart: Path,
) -> None:
    kinds = by_kind(render_chart(chart, INGRESS_ON))
    web, config = web_of(kinds), config_of(kinds)
    internal = next(s for s in kinds["Service"] if s["spec"]["ports"][0]["targetPort"] == "admin")

    routed = copy.deepcopy(kinds)
    path = routed["Ingress"][0]["spec"]["rules"][0]["http"]["paths"][0]
    path["backend"]["service"] = {"name": internal["metadata"]["name"], "port": {"name": "admin"}}
    assert any(
        "routes to the internal port" in p for p in internal_port_invariants(routed, web, config)
    )

    published = copy.deepcopy(kinds)
    for service in published["Service"]:
        service["spec"]["type"] = "LoadBalancer"
    assert any("outside the cluster" in p for p in internal_port_invariants(published, web, config))

    missing = copy.deepcopy(kinds)
    missing["Service"] = [
        s
        for s in missing["Service"]
        if s is not internal and s["spec"]["ports"][0]["targetPort"] != "admin"
    ]
    assert any("no Service exposes" in p for p in internal_port_invariants(missing, web, config))
