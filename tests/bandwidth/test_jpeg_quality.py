"""The JPEG quality controller, fed network times directly: no clock, no network."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from policylink.client import ClientConfig
from policylink.client.jpeg_quality import QualityBounds, QualityController
from policylink.client.uplink import Uplink
from policylink.wire import ActionChunk, CameraSpec, Header, MsgType, Observation

BOUNDS = QualityBounds(maximum=90, minimum=40)


def feed(controller: QualityController, network_ms: float, replies: int) -> list[int]:
    return [controller.observe(network_ms) for _ in range(replies)]


def test_quality_stays_at_its_maximum_on_a_quiet_link() -> None:
    controller = QualityController(BOUNDS)
    assert set(feed(controller, 3.0, 50)) == {90}


def test_saturated_uplink_lowers_quality_step_by_step_down_to_the_minimum() -> None:
    controller = QualityController(BOUNDS)
    feed(controller, 3.0, 20)
    qualities = feed(controller, 200.0, 40)
    assert qualities[0] == 90, "one slow reply is not a trend"
    drops = sorted(set(qualities), reverse=True)
    assert drops[:3] == [90, 67, 50], drops
    assert qualities[-1] == 40 and min(qualities) == 40


def test_quality_waits_for_the_effect_of_each_change_before_the_next() -> None:
    controller = QualityController(BOUNDS)
    feed(controller, 3.0, 20)
    qualities = feed(controller, 200.0, 12)
    changes = [i for i in range(1, len(qualities)) if qualities[i] != qualities[i - 1]]
    assert all(b - a >= BOUNDS.hold_requests for a, b in itertools.pairwise(changes))


def test_quality_climbs_back_once_the_link_recovers() -> None:
    controller = QualityController(BOUNDS)
    feed(controller, 3.0, 20)
    feed(controller, 200.0, 40)
    assert controller.quality == 40
    qualities = feed(controller, 3.5, 60)
    assert qualities[-1] == 90
    assert all(b - a <= BOUNDS.increase_step for a, b in itertools.pairwise(qualities))


def test_jitter_on_a_fast_link_is_not_congestion() -> None:
    """Three times a sub-millisecond floor is still far below the absolute margin."""
    controller = QualityController(BOUNDS)
    feed(controller, 0.3, 20)
    assert set(feed(controller, 1.5, 40)) == {90}


def test_equal_bounds_keep_quality_fixed() -> None:
    controller = QualityController(QualityBounds(maximum=75, minimum=75))
    feed(controller, 3.0, 10)
    assert set(feed(controller, 500.0, 40)) == {75}


def test_a_busy_server_does_not_lower_quality() -> None:
    """The chunk's queue wait and forward are the server's, not the link's: subtracted."""
    uplink = Uplink(BOUNDS)
    obs = Observation(state=np.zeros(2, np.float32))
    for seq in range(40):
        header = Header(1, MsgType.OBSERVATION, seq_id=seq)
        uplink.encode(header, obs)
        busy = 0.0 if seq < 20 else 10_000.0  # a slow server answers 10 s later
        chunk = ActionChunk(np.zeros((1, 2)), np.zeros((1, 2)), queue_wait_ms=busy)
        uplink.answered(header, chunk)
    assert uplink.stats().jpeg_quality == 90


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"jpeg_quality_min": 0}, "jpeg_quality_min must be 1..100"),
        ({"jpeg_quality_min": 101}, "jpeg_quality_min must be 1..100"),
        ({"uplink_rise_factor": 1.0}, "uplink_rise_factor must be a number above 1"),
        ({"uplink_rise_factor": float("nan")}, "uplink_rise_factor must be a number above 1"),
    ],
)
def test_bad_uplink_settings_are_refused_naming_the_field(
    fields: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ClientConfig(**fields)


def test_a_quality_below_the_minimum_is_fixed_rather_than_refused() -> None:
    uplink = Uplink.from_config(ClientConfig(jpeg_quality=30, jpeg_quality_min=50))
    assert uplink.stats().jpeg_quality == 30


def test_resize_is_skipped_for_cameras_without_an_input_resolution() -> None:
    uplink = Uplink(BOUNDS)
    uplink.adopt([CameraSpec("front", 480, 640), CameraSpec("wrist", 480, 640, 480, 640)])
    assert uplink.stats().resized_cameras == ()
