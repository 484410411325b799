"""A robot driving an OpenPI server needs numpy, msgpack and websockets: no torch, no zenoh."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys

BLOCKED = ("torch", "zenoh", "simplejpeg", "pydantic", "typer", "openpi_client")


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked for this test")
        return None


sys.meta_path.insert(0, Refuse())

import numpy as np

from policylink.client import ClientConfig
from policylink.client.transport import make_transport
from policylink.transport.msgpack_numpy import packb, unpackb
from policylink.transport.openpi_keymap import KeyMap
from policylink.wire import CameraSpec, Observation

transport = make_transport(ClientConfig(endpoint="ws://127.0.0.1:9", openpi_key_map="droid"))
bound = KeyMap.from_config("droid").bind([CameraSpec("base", 4, 4)], 8)
obs = Observation(state=np.zeros(8, np.float32), images={"base": np.zeros((4, 4, 3), np.uint8)})
frame = unpackb(packb(bound.to_openpi(obs)))
print(type(transport).__name__, sorted(frame))
"""


def test_openpi_client_side_runs_without_torch_zenoh_or_pydantic():
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROGRAM)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "OpenPIClientTransport",
        "['observation/exterior_image_1_left',",
        "'observation/gripper_position',",
        "'observation/joint_position']",
    ]
