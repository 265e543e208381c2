"""What compose.yaml tells atp's processes and the metrics and traces services, checked
without a Docker engine: every URL names a stack service and a port it listens on, and every
metric the dashboard and the alerts query is one the plugin exports. The stack's shape
(schema, healthchecks, mounts, ports) is tests/unit/test_compose.py's."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry

from atp.core.clock import ManualClock
from atp.core.plugins import make_plugin_manager
from atp.core.settings import Settings
from atp.plugins.prometheus import PrometheusConfig, PrometheusPlugin
from tests.compose_support import ATP, LISTENS, REPO, SERVICES, container_ports, env

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
    "atp-worker": ATP_ENV | {"ATP_APP", "ATP_PROMETHEUS__PORT"},
    "atp-scheduler": ATP_ENV | {"ATP_PROMETHEUS__PORT"},
    "atp-server": ATP_ENV,
}


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


@pytest.mark.parametrize("service", sorted(NEEDED_ENV))
def test_each_atp_service_has_the_variables_it_needs(service: str) -> None:
    missing = NEEDED_ENV[service] - {k for k, v in env(service).items() if v}
    assert not missing, f"{service} lacks {sorted(missing)}"


@pytest.mark.parametrize("service", ATP)
def test_atp_services_settings_load_and_their_urls_name_stack_services(service: str) -> None:
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
