"""The robot side runs with numpy and msgpack alone: no torch, no zenoh, not even a JPEG codec.

Each test runs a fresh interpreter whose import system refuses the heavy packages, so an
accidental top-level import anywhere on the edge path fails here, not on a Raspberry Pi.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.blocked_imports import run_blocking

BLOCKED = ("torch", "zenoh", "simplejpeg", "websockets", "typer", "pydantic")


def test_wire_and_the_policy_protocol_import_without_heavy_packages(tmp_path: Path) -> None:
    out = run_blocking(
        BLOCKED,
        """
        import policylink.wire
        import policylink.policy.base
        print("refused:", refused)
        """,
        tmp_path,
    )
    assert out.strip() == "refused: []"


def test_raw_image_observation_round_trips_without_a_jpeg_codec(tmp_path: Path) -> None:
    out = run_blocking(
        BLOCKED,
        """
        import numpy as np
        from policylink import wire

        image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
        obs = wire.Observation(state=np.ones(3, np.float32), images={"top": image})
        back = wire.decode_observation(wire.encode_observation(obs, jpeg_quality=0))
        print(np.array_equal(back.images["top"], image), np.array_equal(back.state, obs.state))
        """,
        tmp_path,
    )
    assert out.split() == ["True", "True"]


def test_jpeg_without_a_codec_asks_for_simplejpeg(tmp_path: Path) -> None:
    out = run_blocking(
        BLOCKED,
        """
        import numpy as np
        from policylink import wire

        image = np.zeros((4, 6, 3), np.uint8)
        for attempt in (
            lambda: wire.encode_image(image, 90, "images.top"),
            lambda: wire.decode_image({"format": "jpeg", "shape": [4, 6, 3], "data": b"\\xff"}),
        ):
            try:
                attempt()
            except wire.ImageError as exc:
                print(exc)
        """,
        tmp_path,
    )
    lines = out.splitlines()
    assert len(lines) == 2
    assert all("pip install simplejpeg" in line for line in lines)
    assert lines[0].startswith("images.top: ")
