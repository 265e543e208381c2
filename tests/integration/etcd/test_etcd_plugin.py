"""The etcd plugin without a server: URLs, the hook, and atp without the etcd extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import InvalidInput
from atp.core.plugins import make_plugin_manager
from atp.core.settings import Settings
from atp.core.urls import mask
from atp.plugins import etcd as etcd_plugin
from atp.plugins.etcd import EtcdTarget
from atp.plugins.etcd._url import parse_url
from atp.plugins.etcd.coordinator import EtcdCoordinator


def test_one_member_with_the_defaults():
    assert parse_url("etcd://127.0.0.1:2379") == EtcdTarget(
        url="etcd://127.0.0.1:2379", endpoints=(("127.0.0.1", 2379),), prefix="atp", timeout=3.0
    )


def test_members_in_order_with_default_ports_ipv6_and_options():
    target = parse_url("etcd://a:1,b,[::1]:3/?prefix=/team/atp/&timeout=0.5")
    assert target.endpoints == (("a", 1), ("b", 2379), ("::1", 3))
    assert (target.prefix, target.timeout) == ("team/atp", 0.5)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("etcd://", "names no member"),
        ("etcd://a:1,,b:2", "'' is not host:port"),
        ("etcd://a:0", "port from 1 to 65535"),
        ("etcd://a:99999", "port from 1 to 65535"),
        ("etcd://a:", "port from 1 to 65535"),
        ("etcd://a b:1", "is not host:port"),
        ("etcd://a:1/atp", "a path is not allowed"),
        ("etcd://user:secret@a:1", "credentials are not supported"),
        ("etcd://a:1?timout=2", "did you mean 'timeout'"),
        ("etcd://a:1?timeout=0", "timeout must be seconds > 0"),
        ("etcd://a:1?timeout=nan", "timeout must be seconds > 0"),
        ("etcd://a:1?prefix=a//b", "prefix must be words"),
        ("etcd://a:1?prefix=x&prefix=y", "given twice"),
        ("etcd://a:1#x", "fragment"),
        ("http://a:1", "must start with 'etcd://'"),
    ],
)
def test_malformed_urls_are_refused_with_the_reason(url, complaint):
    with pytest.raises(InvalidInput, match=complaint) as caught:
        parse_url(url)
    assert mask(url) in str(caught.value)  # with any password as ***


def test_the_hook_serves_etcd_urls_only_and_does_no_io():
    clock = ManualClock()
    built = etcd_plugin.atp_make_coordinator(
        url="ETCD://127.0.0.1:9,127.0.0.1:10", settings=Settings(), clock=clock
    )
    assert isinstance(built, EtcdCoordinator)
    assert built.target.endpoints == (("127.0.0.1", 9), ("127.0.0.1", 10))
    for other in ("local:///x.db", "memory://", "redis://localhost"):
        assert etcd_plugin.atp_make_coordinator(url=other, settings=Settings(), clock=clock) is None


def test_it_is_a_builtin_plugin_serving_the_scheme():
    manager = make_plugin_manager(entry_points=False)
    assert "etcd" in manager.schemes("coordinator")
    built = manager.make_coordinator("etcd://127.0.0.1:9", Settings(), ManualClock())
    assert isinstance(built, EtcdCoordinator)


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan"), float("inf")])
async def test_a_bad_ttl_is_refused_before_any_request(ttl):
    coordinator = EtcdCoordinator(parse_url("etcd://127.0.0.1:9"), ManualClock())
    with pytest.raises(InvalidInput, match="ttl"):
        await coordinator.acquire("leader", "me", ttl)
    with pytest.raises(InvalidInput, match="owner"):
        await coordinator.acquire("leader", "", 5.0)
    await coordinator.close()


WITHOUT_THE_EXTRA = """
import sys
sys.modules["aetcd"] = None  # what an install without the etcd extra looks like
from atp.core.clock import ManualClock
from atp.core.errors import ConfigError
from atp.core.plugins import make_plugin_manager
from atp.core.settings import Settings

manager = make_plugin_manager(entry_points=False)
assert "etcd" in manager.schemes("coordinator")
manager.make_coordinator("local:///x.db", Settings(), ManualClock())
try:
    manager.make_coordinator("etcd://127.0.0.1:2379", Settings(), ManualClock())
except ConfigError as exc:
    print(exc)
else:
    raise SystemExit("no ConfigError")
"""


def test_without_the_extra_atp_runs_and_etcd_urls_get_an_install_hint():
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WITHOUT_THE_EXTRA)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'atp[etcd]'" in done.stdout
