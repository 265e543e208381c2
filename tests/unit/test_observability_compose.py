"""compose.yaml and deploy/ checked without a Docker engine: shape, files, ports, variables,
and that every metric the dashboard and the alerts query is one the plugin exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry

from atp.core.clock import ManualClock
from atp.core.plugins import make_plugin_manager
from atp.core.settings import Settings
from atp.plugins.prometheus import PrometheusConfig, PrometheusPlugin

REPO = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ATP = ("atp-server", "atp-worker", "atp-scheduler")
REQUIRED = {
    "redis",
    "nats",
    "etcd",
    "mariadb",
    "toxiproxy",
    "prometheus",
    "grafana",
    "otel-collector",
    "jaeger",
    *ATP,
}
ATP_ENV = {
    "ATP_STORE",
    "ATP_TRANSPORT",
    "ATP_COORDINATOR",
    "ATP_PLUGINS",
    "ATP_LOG_FORMAT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
}
NEEDED_ENV = {
    "mariadb": {"MARIADB_ROOT_PASSWORD", "MARIADB_DATABASE", "MARIADB_USER", "MARIADB_PASSWORD"},
    "grafana": {"GF_SECURITY_ADMIN_PASSWORD"},
    "jaeger": {"COLLECTOR_OTLP_ENABLED"},
    "etcd": {"ETCD_ADVERTISE_CLIENT_URLS", "ETCD_LISTEN_CLIENT_URLS"},
    "atp-worker": ATP_ENV | {"ATP_APP", "ATP_PROMETHEUS__PORT"},
    "atp-scheduler": ATP_ENV | {"ATP_PROMETHEUS__PORT"},
    "atp-server": ATP_ENV,
}
# Ports each service listens on inside the stack (its image's defaults, or set here).
LISTENS = {
    "redis": {6379},
    "nats": {4222, 8222},
    "etcd": {2379},
    "mariadb": {3306},
    "toxiproxy": {8474},
    "prometheus": {9090},
    "grafana": {3000},
    "otel-collector": {4317, 4318},
    "jaeger": {16686, 4317, 4318},
    "atp-server": {8080, 50051},
    "atp-worker": {9464},
    "atp-scheduler": {9464},
}


def env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def container_ports(service: str) -> set[int]:
    return {int(str(p).split(":")[-1]) for p in SERVICES[service].get("ports", [])}


def exported_metrics() -> set[str]:
    """Every sample name the plugin can export, with histogram and counter suffixes."""
    registry = CollectorRegistry()
    PrometheusPlugin(registry)
    names = {"atp_task_depth", "atp_dead_letters"}  # from the store, at scrape time
    for collector in list(registry._collector_to_names):
        for family in getattr(collector, "describe", lambda: [])():
            names.add(family.name)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
    return names


def metrics_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(atp_[a-z_]+)\b", expr))


def test_every_required_service_is_there_with_an_image():
    assert set(SERVICES) >= REQUIRED
    for name, service in SERVICES.items():
        assert service.get("image"), f"{name} has no image"
    for name in ATP:
        assert (REPO / SERVICES[name]["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("service", sorted(NEEDED_ENV))
def test_each_service_has_the_variables_it_needs(service: str):
    missing = NEEDED_ENV[service] - {k for k, v in env(service).items() if v}
    assert not missing, f"{service} lacks {sorted(missing)}"


def test_host_ports_are_unique_and_map_to_listening_ports():
    host_ports: list[int] = []
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            host, _, container = str(mapping).rpartition(":")
            host_ports.append(int(host or container))
        proxied = {16379, 14222, 12379, 13306} if name == "toxiproxy" else set()
        assert container_ports(name) <= LISTENS[name] | proxied, name
    assert len(host_ports) == len(set(host_ports))


def test_every_mounted_file_and_referenced_service_exists():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: undeclared volume {source}"
        for dependency in service.get("depends_on", []):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"


@pytest.mark.parametrize("service", ATP)
def test_atp_services_settings_load_and_their_urls_name_stack_services(service: str):
    variables = env(service)
    settings = Settings.load(env=variables, path=None)
    manager = make_plugin_manager(settings.replace(plugins=()), entry_points=False)
    clock = ManualClock()
    manager.make_store(settings.store, settings, clock)
    manager.make_transport(settings.transport, settings, clock)
    manager.make_coordinator(settings.coordinator_url, settings, clock)
    assert set(settings.plugins) == {"atp.plugins.prometheus", "atp.plugins.otel"}
    config = PrometheusConfig.from_settings(settings)
    if service != "atp-server":
        assert config.port in container_ports(service)
    for url in (
        settings.store,
        settings.transport,
        settings.coordinator_url,
        variables["OTEL_EXPORTER_OTLP_ENDPOINT"],
    ):
        parts = urlsplit(url)
        assert parts.hostname in SERVICES, url
        assert parts.port in LISTENS[parts.hostname], url


def test_prometheus_scrapes_each_atp_process_where_it_serves():
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert targets == {"atp-server:8080", "atp-worker:9464", "atp-scheduler:9464"}
    for target in targets:
        host, port = target.split(":")
        assert int(port) in container_ports(host)
    mounted = {str(v).split(":")[1] for v in SERVICES["prometheus"]["volumes"]}
    assert set(config["rule_files"]) <= mounted


def test_alert_rules_cover_the_issue_and_query_exported_metrics():
    rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    assert {
        "AtpDeadLettersGrowing",
        "AtpQueueDepthGrowing",
        "AtpNoSchedulerLeader",
        "AtpCronLate",
    } <= set(alerts)
    known = exported_metrics()
    for name, rule in alerts.items():
        assert metrics_in(rule["expr"]) <= known, name
        assert rule["annotations"]["summary"], name


def test_the_dashboard_is_provisioned_and_queries_exported_metrics():
    dashboard = json.loads((REPO / "deploy/grafana/atp-dashboard.json").read_text())
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/atp.yml").read_text())
    folder = provider["providers"][0]["options"]["path"]
    mounts = {str(v).split(":")[1] for v in SERVICES["grafana"]["volumes"]}
    assert f"{folder}/atp-dashboard.json" in mounts
    sources = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/datasources.yml").read_text()
    )
    uids = {source["uid"] for source in sources["datasources"]}
    known = exported_metrics()
    used: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] in uids
            assert metrics_in(target["expr"]) <= known, panel["title"]
            used |= metrics_in(target["expr"])
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("per second", "duration", "depth", "dead letters", "leader", "cron lateness"):
        assert topic in titles
    assert {"atp_task_depth", "atp_dead_letters", "atp_leader"} <= used


def test_the_collector_sends_traces_to_jaeger():
    collector = yaml.safe_load((REPO / "deploy/otel/collector.yaml").read_text())
    pipeline = collector["service"]["pipelines"]["traces"]
    (exporter,) = pipeline["exporters"]
    host, port = collector["exporters"][exporter]["endpoint"].split(":")
    assert host in SERVICES
    assert int(port) in LISTENS[host]
    assert set(pipeline["receivers"]) == {"otlp"}
    mounted = {str(v).split(":")[1] for v in SERVICES["otel-collector"]["volumes"]}
    assert any(arg.endswith(tuple(mounted)) for arg in SERVICES["otel-collector"]["command"])


def test_toxiproxy_proxies_stack_services():
    proxies = json.loads((REPO / "deploy/toxiproxy/toxiproxy.json").read_text())
    for proxy in proxies:
        host, port = proxy["upstream"].split(":")
        assert int(port) in LISTENS[host]
        assert int(proxy["listen"].split(":")[1]) in container_ports("toxiproxy")
