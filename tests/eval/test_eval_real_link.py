"""`policylink eval` over a real link: the server in a namespace behind the impairment proxy,
a fresh proxy for every point, and each point saying which link it ran over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.demo.conftest import policylink
from tests.links.conftest import namespaces_allowed  # noqa: F401 (skips, or fails under CI)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("namespaces_allowed")]


def test_a_point_runs_over_the_real_link_with_a_proxy_of_its_own(tmp_path: Path) -> None:
    result = policylink(
        *("eval", "--link", "real", "--rtt-ms", "100", "--engines", "async_rtc,sync"),
        *("--robots", "1", "--episodes", "1", "--policy-size", "none"),
        *("--image-size", "96x128", "--track-s", "0.5", "--max-episode-s", "10"),
        *("--out-dir", str(tmp_path)),
        timeout_s=300,
    )
    assert result.returncode == 0, result.stderr
    assert "network: real link: impairment proxy (+100 ms RTT" in result.stderr
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results["settings"]["path"].startswith("real link: veth"), results["settings"]
    points = results["points"]
    assert [p["engine"] for p in points] == ["async_rtc", "sync"]
    for point in points:
        assert point["link"] == "real", point
        assert point["network"].startswith("real link: impairment proxy (+100 ms RTT"), point
        # The robot's one Zenoh session crossed this point's own proxy, both ways.
        proxy = point["proxy"]
        assert proxy["connections"] == 1, point
        assert proxy["bytes_up"] > 0 and proxy["bytes_down"] > 0, point
        assert point["errors"] == [], point
        assert point["rtt_p50_ms"] >= 100.0, point  # the proxy's delay is in every round trip
    assert "real" in (tmp_path / "eval.html").read_text()
