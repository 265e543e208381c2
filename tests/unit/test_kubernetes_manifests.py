"""deploy/kubernetes/, checked without a cluster: every object against the Kubernetes
schemas kubernetes-validate bundles (strict: an unknown field fails), the KEDA
ScaledObject against deploy/kubernetes/schemas/scaledobject.json, and the facts that hold
the files together: the ConfigMap is a valid atp configuration, grace periods cover the
drain, probes name ports the containers open and paths atp serves, selectors select, and
the autoscalers query gauges the Prometheus plugin serves (ADR 0044).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from atp.adapters._auth.config import ServerSettings
from atp.adapters.cli._supervisor import KILL_GRACE
from atp.adapters.http._app import RESERVED
from atp.core.clock import ManualClock
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.ports import Member, Registry
from atp.core.settings import Settings
from atp.plugins.prometheus import PrometheusConfig, PrometheusPlugin
from atp.plugins.prometheus._depth import GROUP_OLDEST_READY_AGE, GROUP_READY_DEPTH
from atp.plugins.prometheus._plugin import METRICS_PATH
from tests.observability_support import parse

HERE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES = "1.30"
"""The oldest Kubernetes the manifests are for (autoscaling/v2, policy/v1)."""
Obj = dict[str, Any]


def documents(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> Iterator[tuple[Path, Obj]]:
    """Every object of every file, the kustomization's and the alternatives' included."""
    for path in sorted(HERE.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in documents(path):
                yield path, doc


def deployed() -> list[Obj]:
    """The objects ``kubectl apply -k`` creates."""
    listed = documents(HERE / "kustomization.yaml")[0]["resources"]
    return [doc for name in listed for doc in documents(HERE / name)]


def of_kind(kind: str, objects: list[Obj] | None = None) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects or deployed() if o["kind"] == kind}


def container(deployment: Obj) -> Obj:
    only: Obj
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def settings(tmp_path: Path) -> Settings:
    """The ConfigMap's atp.toml, read as every atp process reads it."""
    path = tmp_path / "atp.toml"
    path.write_text(of_kind("ConfigMap")["atp-config"]["data"]["atp.toml"])
    return Settings.load(env={}, path=path)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize(
    ("path", "obj"),
    [pytest.param(p, o, id=f"{p.name}:{o['kind']}") for p, o in manifests()],
)
def test_every_object_is_valid(path: Path, obj: Obj) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        schema = json.loads((HERE / "schemas" / "scaledobject.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.Draft202012Validator(schema).validate(obj)
        behavior = obj["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        obj = hpa_with(behavior)
    kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def hpa_with(behavior: Obj) -> Obj:
    """An autoscaling/v2 HPA carrying ``behavior``: KEDA passes it on as it is."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "behavior"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
            "maxReplicas": 2,
            "behavior": behavior,
        },
    }


def test_the_schema_refuses_a_misspelt_field() -> None:
    schema = json.loads((HERE / "schemas" / "scaledobject.json").read_text())
    (scaled,) = of_kind("ScaledObject").values()
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["triggers"][0]["metadata"]["treshold"] = "1"
    with pytest.raises(jsonschema.ValidationError, match="treshold"):
        jsonschema.validate(broken, schema)


def test_the_kustomization_lists_every_manifest_but_the_alternatives() -> None:
    listed = documents(HERE / "kustomization.yaml")[0]["resources"]
    present = {p.name for p in HERE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(present)


def test_the_config_map_is_an_atp_configuration_on_redis(tmp_path: Path) -> None:
    found = settings(tmp_path)
    assert {found.store, found.transport, found.coordinator_url} == {"redis://atp-redis:6379/0"}
    assert "atp.plugins.prometheus" in found.plugins
    assert PrometheusConfig.from_settings(found).depth == "auto"
    assert ServerSettings.load(found).host == "0.0.0.0"


def test_the_worker_grace_period_covers_its_drain(tmp_path: Path) -> None:
    drain = settings(tmp_path).drain_timeout
    worker = of_kind("Deployment")["atp-worker"]
    args = container(worker)["args"]
    supervised = "--processes" in args and args[args.index("--processes") + 1] != "1"
    kill_after = drain + (KILL_GRACE if supervised else 0.0)
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > kill_after


def test_container_ports_are_the_configured_ones(tmp_path: Path) -> None:
    found = settings(tmp_path)
    server, metrics = ServerSettings.load(found), PrometheusConfig.from_settings(found).port
    deployments = of_kind("Deployment")
    assert ports(deployments["atp-server"]) == {"http": server.port, "grpc": server.grpc_port}
    assert ports(deployments["atp-scheduler"]) == {"metrics": metrics}
    args = container(deployments["atp-worker"])["args"]
    processes = int(args[args.index("--processes") + 1])
    # child k serves metrics on port + k - 1 (docs/workers.md)
    assert sorted(ports(deployments["atp-worker"]).values()) == [
        metrics + k for k in range(processes)
    ]
    assert container(deployments["atp-worker"])["resources"]["limits"]["cpu"] == str(processes)


def ports(deployment: Obj) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}


@pytest.mark.parametrize("name", ["atp-server", "atp-worker", "atp-scheduler"])
def test_probes_ask_ports_the_container_opens_for_paths_atp_serves(name: str) -> None:
    found = container(of_kind("Deployment")[name])
    served = set(RESERVED) if name == "atp-server" else {METRICS_PATH}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = found[probe]["httpGet"]
        assert get["port"] in ports(of_kind("Deployment")[name]), (probe, get)
        assert get["path"] in served, (probe, get)


def test_every_container_runs_locked_down_with_resources() -> None:
    for name, deployment in of_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        found = container(deployment)
        assert found["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert found["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert found["resources"]["requests"], name
        assert found["resources"]["limits"]["memory"], name
        mounts = {m["mountPath"] for m in found["volumeMounts"]}
        assert "/tmp" in mounts, name  # the only place a read-only root leaves to write


def test_selectors_select_their_pods() -> None:
    deployments = of_kind("Deployment")
    pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    for name, deployment in deployments.items():
        assert selects(deployment["spec"]["selector"]["matchLabels"], pods[name]), name
    for kind in ("Service", "PodDisruptionBudget"):
        for name, obj in of_kind(kind).items():
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            chosen = [d for d, labels in pods.items() if selects(selector, labels)]
            assert len(chosen) == 1, (kind, name, chosen)
            if kind == "Service":
                named = ports(deployments[chosen[0]])
                assert {p["targetPort"] for p in obj["spec"]["ports"]} <= set(named), name


def test_the_schedulers_run_two_replicas_and_the_workers_replicas_are_keda_s() -> None:
    deployments = of_kind("Deployment")
    assert deployments["atp-scheduler"]["spec"]["replicas"] == 2
    assert "replicas" not in deployments["atp-worker"]["spec"]
    (scaled,) = of_kind("ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] in deployments


def queried_metrics() -> list[tuple[str, dict[str, str]]]:
    """(metric, label matchers) of every query of the ScaledObject and the HPA."""
    (scaled,) = of_kind("ScaledObject").values()
    found = []
    for trigger in scaled["spec"]["triggers"]:
        for name, labels in re.findall(
            r"([a-z_:][a-z0-9_:]*)\{([^}]*)\}", trigger["metadata"]["query"]
        ):
            found.append((name, dict(re.findall(r'(\w+)="([^"]*)"', labels))))
    (hpa,) = of_kind(
        "HorizontalPodAutoscaler", documents(HERE / "alternatives" / "hpa.yaml")
    ).values()
    for metric in hpa["spec"]["metrics"]:
        external = metric["external"]["metric"]
        found.append((external["name"], external["selector"]["matchLabels"]))
    return found


def test_the_autoscalers_ask_for_the_workers_group_gauges(tmp_path: Path) -> None:
    group = settings(tmp_path).group
    found = queried_metrics()
    assert {name for name, _ in found} == {GROUP_READY_DEPTH, GROUP_OLDEST_READY_AGE}
    assert all(labels == {"group": group} for _, labels in found)


async def test_the_plugin_serves_what_the_autoscalers_ask_for(tmp_path: Path) -> None:
    group, clock = settings(tmp_path).group, ManualClock()
    config = Settings(store="memory://", transport="memory://", coordinator="memory://")
    async with Platform.build(config, plugins=make_plugin_manager(config), clock=clock) as platform:
        assert isinstance(platform.coordinator, Registry)
        now = clock.now()
        member = Member("w1", "worker", "h", 1, "v", group, (">",), 32, 0, now, now)
        await platform.coordinator.announce([member], ttl=60)
        plugin = PrometheusPlugin(CollectorRegistry(), PrometheusConfig(depth="on"))
        plugin.atp_platform_built(platform)
        await plugin.refresh()
        samples = parse(generate_latest(plugin.registry))
    served = {(name, frozenset(labels)) for name, labels in samples}
    for name, labels in queried_metrics():
        assert (name, frozenset(labels.items())) in served, name
