"""`policylink replay`: a real capture — a simulated arm over Zenoh and one OpenPI request —
replayed offline through the same and through another configuration of the policy."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import yaml
from websockets.sync.client import connect

from policylink.client import ClientConfig, RemoteEngine, RobotLayout, run_loop
from policylink.demo.server_process import MODEL_ID, TASK_SLUG
from policylink.net.ports import free_port
from policylink.server.capture import VERSION, read_capture
from policylink.sim import CameraConfig, SimArm
from policylink.wire.messages import Observation
from policylink.wire.openpi.msgpack_numpy import packb, unpackb
from tests.demo.conftest import policylink
from tests.support.servers import in_process_servers
from tests.support.waiting import wait_for

CAMERA = {"name": "top", "height": 96, "width": 128}
ZENOH_REQUESTS = 12


def expert_policy(**params: Any) -> dict[str, Any]:
    return {"kind": "sim_expert", "params": {"cameras": [CAMERA], **params}}


def drive_arm(endpoint: str, enough: threading.Event) -> None:
    arm = SimArm(cameras=(CameraConfig("top", 96, 128),))
    config = ClientConfig(endpoint=endpoint, model_id=MODEL_ID, client_id="arm", fps=30.0)
    engine = RemoteEngine(config, RobotLayout.of(arm))
    run_loop(arm, engine, config.fps, stop=enough)


def send_openpi_request(app: Any) -> dict[str, Any]:
    caps = app.core.capabilities
    keys = app.manifest.openpi.key_map_spec().bind(caps.cameras, caps.state_dim)
    obs = Observation(
        state=np.array([0.1, 0.4, -0.3, 0.2, 0.25, 0.01, 0.0], np.float32),
        images={"top": np.full((96, 128, 3), 40, np.uint8)},
    )
    with connect(app.openpi.urls[0], compression=None, max_size=None) as ws:
        unpackb(ws.recv())  # the metadata frame
        ws.send(packb(keys.to_openpi(obs)))
        return unpackb(ws.recv())


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("replay")
    base = {"model_id": MODEL_ID, "task_slug": TASK_SLUG}
    with in_process_servers() as start:
        app = start(
            base
            | {
                "policy": expert_policy(),
                "capture": {"dir": str(folder / "capture"), "max_requests": 100},
                "openpi": {"enabled": True, "port": free_port()},
            }
        )
        enough = threading.Event()
        arm = threading.Thread(target=drive_arm, args=(app.manifest.zenoh.listen[0], enough))
        arm.start()
        try:
            capture = app.core.capture
            assert capture is not None
            wait_for(lambda: capture.count >= ZENOH_REQUESTS, 60, "captured robot requests")
        finally:
            enough.set()
            arm.join(30)
        reply = send_openpi_request(app)
        assert np.asarray(reply["actions"]).shape == (30, 3)
        wait_for(lambda: capture.count >= ZENOH_REQUESTS + 1, 30, "the captured OpenPI request")
    for name, policy in (("same", expert_policy()), ("other", expert_policy(fps=15.0))):
        manifest = base | {"policy": policy, "warmup_inferences": 1}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(manifest))
    return folder


def test_captures_hold_both_protocols_with_what_replay_needs(capture):
    records = list(read_capture(capture / "capture"))
    assert {r.protocol for r in records} == {"zenoh", "openpi"}
    assert all(r.request is not None for r in records)
    raw = msgpack.unpackb((capture / "capture" / "000000.msgpack").read_bytes())
    assert raw["version"] == VERSION
    assert raw["rtc"] is True
    assert all(r.reply.inference_ms > 0 for r in records)


def test_replay_against_the_same_manifest_reports_zero_difference(capture, tmp_path):
    out = tmp_path / "replay.json"
    result = policylink(
        "replay",
        str(capture / "capture"),
        "--manifest",
        str(capture / "same.yaml"),
        "--max-diff",
        "0",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "largest difference 0" in result.stdout
    report = json.loads(out.read_text())
    assert report["max_abs_diff"] == 0.0
    assert report["outcomes"] == {"compared": report["requests"]}
    assert {r["protocol"] for r in report["per_request"]} == {"zenoh", "openpi"}
    assert [d["name"] for d in report["dimensions"]] == ["shoulder.pos", "elbow.pos", "wrist.pos"]
    forward = report["forward"]
    assert forward["captured_p50_ms"] > 0
    assert forward["replayed_p50_ms"] > 0
    assert "replayed" in result.stderr  # progress


def test_replay_against_another_configuration_differs_and_fails_the_gate(capture):
    result = policylink(
        "replay",
        str(capture / "capture"),
        "--manifest",
        str(capture / "other.yaml"),
        "--max-diff",
        "0.001",
        "--json",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["max_abs_diff"] > 0.001
    assert all(d["max_abs_diff"] > 0 for d in report["dimensions"])
    assert report["outcomes"] == {"compared": report["requests"]}


def test_replay_of_a_folder_without_a_capture_exits_2_naming_it(tmp_path):
    result = policylink("replay", str(tmp_path))
    assert result.returncode == 2
    assert "holds no .msgpack files" in result.stderr
