"""Fixtures: a cluster of router and replica processes, and a fleet of robots; both always
torn down, whatever the test did to them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from policylink.server import serving_modes
from tests.scaleout.cluster import Cluster
from tests.scaleout.fleet import Fleet
from tests.scaleout.policies import VERIFIED


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """Routers and replicas started on demand. The marked policy is vouched for as shared
    here; the replica processes copy this registry when they start."""
    for family, mode in VERIFIED.items():
        monkeypatch.setitem(serving_modes.VERIFIED_FAMILIES, family, mode)
    made = Cluster(tmp_path / "cluster")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def fleet(cluster: Cluster) -> Iterator[Fleet]:
    """Robots; stopped before the cluster goes, so none sees its replicas leave."""
    made = Fleet()
    try:
        yield made
    finally:
        made.stop()
