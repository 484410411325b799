"""A robot on a real, bandwidth-capped link lowers its JPEG quality while the cap saturates its
uplink and raises it again once the cap is lifted.

The path is the real one of `tests.links.served_link`: the server (echo policy, one 480x640
camera, so the frames dominate the bytes) runs in a network namespace behind a veth pair whose
`tc` token bucket is switched on and off while the robot, in its own process, keeps streaming.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policylink.net.impairment_proxy import Impairment
from policylink.net.netpath import netpath_refusal
from policylink.wire import CameraSpec
from tests.links.served_link import ServedLink, served_over
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

CAMERA = CameraSpec("front", 480, 640)
# A random-noise 480x640 frame is ~0.5 MB at quality 90: a fifth of a second at this rate, a
# hundred times the uncapped round trip.
CAP_MBIT = 20.0
DEADLINE_S = 90.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedLink]:
    refusal = netpath_refusal()
    if refusal is not None:
        why = f"no real link on this machine: {refusal}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    with served_over(tmp_path, Impairment(), camera=CAMERA, buffer_time_s=0.3) as served:
        yield served


def robot(served: ServedLink) -> dict[str, Any]:
    (summary,) = served.robots.summary()
    return summary


def test_quality_drops_under_a_bandwidth_cap_and_recovers_without_it(served: ServedLink) -> None:
    served.robots.more_chunks(20)
    assert robot(served)["jpeg_quality"] == 90
    before = robot(served)

    served.link.path.set_rate(CAP_MBIT)
    capped = wait_for(
        lambda: (r := robot(served))["jpeg_quality"] < 90 and r,
        timeout_s=DEADLINE_S,
        what=f"the robot to lower JPEG quality under a {CAP_MBIT:g} Mbit/s cap",
    )
    lowest = wait_for(
        lambda: (r := robot(served))["jpeg_quality"] <= 67 and r,
        timeout_s=DEADLINE_S,
        what="a second step down while the cap holds",
    )

    served.link.path.set_rate(None)
    recovered = wait_for(
        lambda: (r := robot(served))["jpeg_quality"] == 90 and r,
        timeout_s=DEADLINE_S,
        what="quality back at 90 once the cap is lifted",
    )
    per_request = [
        (b["bytes_sent"] - a["bytes_sent"]) / max(1, b["requests"] - a["requests"])
        for a, b in ((before, capped), (capped, lowest))
    ]
    assert per_request[1] < per_request[0], per_request
    assert recovered["state"] == "streaming", recovered
