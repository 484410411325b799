"""The canonical message of every type whose encoded bytes are pinned in `golden/`.

The fixtures make every change to the wire format deliberate: an encoder change fails
`test_golden.py` until the fixtures are regenerated on purpose, from the repository root, with

    .venv/bin/python -m tests.wire.golden_messages

and the binary diff is reviewed. A change that an older peer cannot read also bumps
`SCHEMA_VERSION`. Observations are pinned with raw images: JPEG bytes depend on the
libjpeg-turbo build, the rest of the format does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from policylink import wire

GOLDEN_DIR = Path(__file__).parent / "golden"
HEADER_FILE = GOLDEN_DIR / "header.bin"

ARM = [f"{side}_{joint}" for side in ("left", "right") for joint in ("waist", "shoulder", "grip")]
CAMERAS = [wire.CameraSpec("top", 480, 640), wire.CameraSpec("wrist", 240, 320)]

CAPABILITIES = wire.Capabilities(
    model_id="lerobot_pi0",
    revision="v1.2",
    task_slug="pick_cube",
    action_names=ARM,
    chunk_size=50,
    state_dim=6,
    state_names=ARM,
    cameras=CAMERAS,
    supports_rtc=True,
    rtc_execution_horizon=10,
    trained_fps=50.0,
    serving_mode="shared",
    default_task="pick up the cube",
    pin_task=False,
    schema_min=2,
    schema_max=2,
    server_version="0.1.0",
)

HEADER = wire.Header(
    schema_version=2,
    msg_type=wire.MsgType.OBSERVATION,
    seq_id=2**40 + 7,
    episode_id=3,
    client_mono_ns=-123_456_789,
    session_epoch=2**31 + 5,
)

GOLDEN: dict[str, wire.Message] = {
    "observation": wire.Observation(
        state=np.linspace(-1.0, 1.0, 6, dtype=np.float32),
        images={"top": np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)},
        task="pick up the cube",
        inference_delay_steps=4,
        prefix_model=np.arange(12, dtype=np.float32).reshape(2, 6) / 8,
        prefix_robot=np.arange(12, dtype=np.float64).reshape(2, 6) / 4,
        episode_start=True,
        playback_left_ms=266.5,
    ),
    "observation_minimal": wire.Observation(state=np.zeros(0, dtype=np.float32)),
    "action_chunk": wire.ActionChunk(
        chunk_model=np.arange(18, dtype=np.float32).reshape(3, 6) / 16,
        chunk_robot=np.arange(18, dtype=np.float32).reshape(3, 6) * -0.5,
        queue_wait_ms=1.25,
        inference_ms=42.5,
        superseded=2,
        server_load=0.375,
    ),
    "status_request": wire.StatusRequest(),
    "status": wire.Status(
        capabilities=CAPABILITIES,
        replica_id="gpu-0",
        active_sessions=3,
        max_sessions=8,
        draining=False,
        max_batch_size=8,
        forward_ms={1: 18.0, 8: 24.5},
        device_busy=0.625,
        capacity_robots=21,
    ),
    "session_open": wire.SessionOpen(
        client_id="arm-7",
        action_names=ARM,
        state_dim=6,
        cameras=CAMERAS,
        fps=30.0,
        task="pick up the cube",
        rtc=True,
        schema_min=2,
        schema_max=2,
        tags={"site": "lab-2", "robot": "aloha"},
        instance="3f9c2a7d",
    ),
    "session_ack": wire.SessionAck(
        session_id="s-0001",
        session_epoch=9,
        schema_version=2,
        capabilities=CAPABILITIES,
        rtc_enabled=True,
        warnings=["fps 30.0 differs from trained fps 50.0"],
    ),
    "session_close": wire.SessionClose(session_id="s-0001", reason="episode done"),
    "reset": wire.Reset(session_id="s-0001", episode_id=4),
    "reset_ack": wire.ResetAck(session_id="s-0001", episode_id=4),
    "error": wire.ErrorReply(
        code=wire.ErrorCode.CAPACITY,
        message="server is full (8/8 sessions); try another replica",
        details={"active_sessions": 8, "max_sessions": 8, "load": 1.0},
    ),
}


def fixture_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.msgpack"


def encode_golden(message: wire.Message) -> bytes:
    return wire.encode_message(message, jpeg_quality=0)


def write_fixtures() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    HEADER_FILE.write_bytes(wire.pack_header(HEADER))
    for name, message in GOLDEN.items():
        fixture_path(name).write_bytes(encode_golden(message))
        print(f"wrote {fixture_path(name).name}")


if __name__ == "__main__":
    write_fixtures()
