"""A robot driving an OpenPI server needs numpy, msgpack and websockets: no torch, no zenoh."""

from __future__ import annotations

from pathlib import Path

from tests.support.blocked_imports import run_blocking

BLOCKED = ("torch", "zenoh", "simplejpeg", "pydantic", "typer", "openpi_client")

PROGRAM = """
import numpy as np

from policylink.client import ClientConfig
from policylink.client.links import make_link
from policylink.wire.openpi.msgpack_numpy import packb, unpackb
from policylink.wire.openpi.keymap import KeyMap
from policylink.wire import CameraSpec, Observation

transport = make_link(ClientConfig(endpoint="ws://127.0.0.1:9", openpi_key_map="droid"))
bound = KeyMap.from_config("droid").bind([CameraSpec("base", 4, 4)], 8)
obs = Observation(state=np.zeros(8, np.float32), images={"base": np.zeros((4, 4, 3), np.uint8)})
frame = unpackb(packb(bound.to_openpi(obs)))
print(type(transport).__name__, sorted(frame))
"""


def test_openpi_client_side_runs_without_torch_zenoh_or_pydantic(tmp_path: Path):
    out = run_blocking(BLOCKED, PROGRAM, tmp_path)
    assert out.split() == [
        "OpenPILink",
        "['observation/exterior_image_1_left',",
        "'observation/gripper_position',",
        "'observation/joint_position']",
    ]
