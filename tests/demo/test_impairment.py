"""The WAN-on-one-machine wrapper, around the real Zenoh transport and a real server."""

import threading
import time

import pytest

from policylink.client import ClientConfig, RemoteEngine, RobotLayout, run_loop
from policylink.client.links import make_link
from policylink.client.links.impairment import DelayLine, ImpairedLink, NetworkImpairment
from policylink.sim import CameraConfig, ReachTrackConfig, SimArm

from .conftest import MODEL_ID, endpoint_of


def drive(app, impairment: NetworkImpairment, seconds: float, **config):
    robot = SimArm(ReachTrackConfig(), cameras=(CameraConfig("top", 96, 128),))
    client = ClientConfig(endpoint=endpoint_of(app), model_id=MODEL_ID, **config)
    transport = ImpairedLink(make_link(client), impairment, seed=1)
    engine = RemoteEngine(client, RobotLayout.of(robot), link=transport)
    run_loop(robot, engine, client.fps, duration_s=seconds)
    return engine.stats, transport


def test_added_round_trip_shows_in_the_latency_the_robot_measures(expert_server):
    stats, _ = drive(expert_server, NetworkImpairment(rtt_ms=150), seconds=1.5)
    assert stats.chunks_merged >= 2
    assert 150 <= stats.last_rtt_ms < 1000
    assert stats.delay_steps >= 5


def test_lost_messages_are_counted_and_streaming_recovers(expert_server):
    stats, transport = drive(
        expert_server,
        NetworkImpairment(loss=0.2),
        seconds=2.5,
        request_timeout_s=0.2,
        timeouts_before_reconnect=100,
    )
    assert transport.dropped > 0
    assert stats.timeouts > 0
    assert stats.chunks_merged >= 3


def test_delay_line_delivers_in_due_order():
    line = DelayLine("test-delay-line")
    delivered: list[str] = []
    done = threading.Event()
    try:
        for name, delay in (("late", 0.15), ("first", 0.0), ("middle", 0.05)):
            line.schedule(delay, lambda name=name: delivered.append(name))
        line.schedule(0.2, done.set)
        assert done.wait(5.0)
    finally:
        line.stop()
    assert delivered == ["first", "middle", "late"]


def test_stopping_the_delay_line_drops_what_is_still_in_flight():
    line = DelayLine("test-delay-line")
    delivered: list[str] = []
    line.schedule(0.3, lambda: delivered.append("too late"))
    line.stop()
    time.sleep(0.4)
    assert delivered == []


def test_a_failing_delivery_does_not_stop_the_line():
    line = DelayLine("test-delay-line")
    done = threading.Event()
    try:
        line.schedule(0.0, lambda: 1 / 0)
        line.schedule(0.01, done.set)
        assert done.wait(5.0)
    finally:
        line.stop()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rtt_ms": -1}, "rtt_ms and jitter_ms must be >= 0"),
        ({"jitter_ms": -5}, "rtt_ms and jitter_ms must be >= 0"),
        ({"loss": 1.0}, r"loss is a probability in \[0, 1\)"),
    ],
)
def test_impossible_impairments_are_refused_naming_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        NetworkImpairment(**fields)


def test_an_impairment_describes_itself_for_reports():
    assert NetworkImpairment().describe() == "no added impairment"
    assert NetworkImpairment(100, 10, 0.05).describe() == "+100 ms RTT, ±10 ms jitter, 5% loss"
