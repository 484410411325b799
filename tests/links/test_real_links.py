"""Robots and a server across a real network path (namespace, veth, `tc`, impairment proxy).

Each case runs a real server process inside a network namespace and a real robot process in
this one; what the robot measures is what Zenoh over that path gives it: a 50 ms ± 10 ms link,
a 2 % lossy one, and a 10 Mbit/s cap. Bands are generous (the suite runs on busy 2-core
machines); the lower bounds are physics: the proxy never delivers early and `tbf` never lets
more through than its rate.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from policylink.net.impairment_proxy import Impairment
from policylink.net.netpath import NAMESPACE_PREFIX, NetPath, sweep_stale
from policylink.wire import CameraSpec
from tests.links.served_link import ServedLink, served_over

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("namespaces_allowed")]


def _window(served: ServedLink, chunks: int, timeout_s: float = 90.0) -> tuple[list[float], Any]:
    """The robot's round trips (ms) while it merges `chunks` more chunks, and its summary."""
    since = time.monotonic_ns()
    summaries, problems = served.robots.more_chunks(chunks, timeout_s)
    assert not problems, problems
    return served.robots.round_trips_ms(since, time.monotonic_ns())[0], summaries[0]


def _quantile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def test_round_trips_over_a_50_ms_link_stay_in_its_band(tmp_path: Path) -> None:
    # ±5 ms each way: the round trip itself spans 50 ms ± 10 ms.
    with served_over(tmp_path, Impairment(rtt_ms=50, jitter_ms=5)) as served:
        rtts, summary = _window(served, 60)
        stats = served.link.close()
    assert stats is not None and stats.connections >= 1 and stats.bytes_up > 0
    low, median, high = min(rtts), statistics.median(rtts), _quantile(rtts, 0.95)
    band = f"{len(rtts)} round trips: min {low:.1f}, median {median:.1f}, p95 {high:.1f} ms"
    assert low >= 40.0, f"faster than the link allows: {band}"
    assert 45.0 <= median <= 90.0, band
    assert summary["state"] == "streaming" and summary["reconnects"] == 0, summary


def test_robot_keeps_streaming_over_a_2_percent_loss_link(tmp_path: Path) -> None:
    impairment = Impairment(rtt_ms=20, loss=0.02)
    with served_over(tmp_path, impairment, seed=3) as served:
        rtts, summary = _window(served, 200)
        stats = served.link.close()
    assert stats is not None
    late = [rtt for rtt in rtts if rtt >= 20 + 0.75 * impairment.rto_ms]
    shape = (
        f"{len(rtts)} round trips, median {statistics.median(rtts):.1f} ms, "
        f"{len(late)} late by a retransmission (max {max(rtts):.0f} ms); proxy: {stats}"
    )
    assert summary["state"] == "streaming", summary
    assert summary["reconnects"] == 0 and summary["timeouts"] == 0, summary
    assert stats.timeout_retransmits + stats.fast_retransmits >= 1, shape
    assert late, f"no retransmission tail: {shape}"
    assert len(late) <= 0.4 * len(rtts), shape
    assert statistics.median(rtts) <= 20 + 60, shape


def test_10_mbit_cap_holds_the_rate_and_stretches_large_round_trips(tmp_path: Path) -> None:
    camera = CameraSpec("front", 240, 320)  # camera noise: ~70 kB per JPEG observation
    with served_over(tmp_path, Impairment(), camera=camera, buffer_time_s=1.0) as served:
        path = served.link.path
        free_rtts, _ = _window(served, 20)
        path.set_rate(10.0)
        _window(served, 5)  # the queue of the uncapped moment drains
        sent_before, began = path.sent_bytes(), time.monotonic()
        capped_rtts, summary = _window(served, 60)
        sent = path.sent_bytes() - sent_before
        rate = sent / (time.monotonic() - began)
    cap = 10e6 / 8
    per_request = sent / len(capped_rtts)
    free, capped = statistics.median(free_rtts), statistics.median(capped_rtts)
    shape = (
        f"{rate * 8 / 1e6:.2f} Mbit/s through a 10 Mbit/s cap; round trip median {free:.1f} ms "
        f"uncapped, {capped:.1f} ms capped ({per_request / 1e3:.0f} kB per request)"
    )
    assert 0.6 * cap <= rate <= 1.1 * cap, shape
    assert capped >= 3 * free, shape
    # An observation cannot cross faster than the cap lets its bytes through.
    assert capped >= 0.8 * per_request / cap * 1e3, shape
    assert summary["state"] == "streaming", summary


def test_path_is_torn_down_and_a_crashed_runs_leftovers_swept() -> None:
    with NetPath(rate_mbit=5.0) as path:
        namespace, host_end = path.namespace, path.host_end
        assert Path(f"/sys/class/net/{host_end}").exists()
    assert not Path(f"/sys/class/net/{host_end}").exists()
    assert namespace not in _namespaces()
    # A run whose process is gone (pid 2**22 + 1 is above Linux's pid limit) left a namespace.
    orphan = f"{NAMESPACE_PREFIX}{2**22 + 1}-0123abcd"
    _ip("netns", "add", orphan)
    assert orphan in sweep_stale()
    assert orphan not in _namespaces()


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout
