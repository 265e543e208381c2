"""Fixtures of the etcd end-to-end tests: a private three-member cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[services.EtcdCluster]:
    """Three etcd members on loopback for this test alone, to stop one at a time."""
    try:
        cluster = services.start_etcd_cluster(tmp_path)
    except services.ServerMissing as exc:
        services.give_up(str(exc), os.environ)
    with cluster:
        yield cluster
