"""`policylink demo`: the smallest end-to-end run of what exists."""

import time

import numpy as np
import typer

from policylink import wire


def demo(
    cameras: int = typer.Option(2, help="Number of 480x640 cameras in the observation."),
    jpeg_quality: int = typer.Option(90, help="JPEG quality; 0 sends raw images."),
) -> None:
    """Encode and decode a typical observation and chunk through the wire format."""
    rng = np.random.default_rng(0)
    obs = wire.Observation(
        state=rng.standard_normal(14).astype(np.float32),
        images={
            f"cam{i}": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for i in range(cameras)
        },
        task="pick up the cube",
    )
    start = time.perf_counter()
    body = wire.encode_observation(obs, jpeg_quality)
    decoded = wire.decode_observation(body)
    elapsed_ms = (time.perf_counter() - start) * 1e3
    typer.echo(
        f"observation: {len(body) / 1024:.0f} KiB on the wire, encode+decode {elapsed_ms:.1f} ms, "
        f"cameras {sorted(decoded.images)}"
    )
