"""Wire format cost: policylink vs pickle and openpi-client's msgpack-numpy on the same data.

A typical request carries state float32[14] and three 480x640 RGB cameras; a typical reply is a
float32[50, 14] chunk. Every codec does a full encode+decode round trip of the same content in
the same run, so the ratios hold on any machine. A second table justifies the JPEG codec:
simplejpeg (libjpeg-turbo) against Pillow on one frame, both at quality 90 with 4:2:0 chroma.
"""

from __future__ import annotations

import io
import pickle
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.timing import timed_ms
from policylink import wire

CAMERAS = ("top", "left_wrist", "right_wrist")
HEIGHT, WIDTH = 480, 640
STATE_DIM, CHUNK_T = 14, 50
JPEG_QUALITY = 90
LINK_MBIT_S = 100
"""A robot's Wi-Fi uplink, for the one column that puts bytes and CPU time on the same scale."""


def synthetic_frame(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A camera-like frame: lit gradients, a textured table, objects, mild sensor noise.

    Pure noise would make JPEG look hopeless and a flat image would make it look free; this
    lands where real 480p frames do, at a few tens of KB at quality 90.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    image[..., 0] = 120 + 60 * x / width + 20 * np.sin(y / 37)
    image[..., 1] = 110 + 50 * y / height + 15 * np.cos(x / 53)
    image[..., 2] = 90 + 40 * (x + y) / (height + width)
    image += 6 * np.sin(x / 3.1 + 2 * np.sin(y / 29))[..., None]
    for _ in range(8):
        cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(20, 90)
        disc = (y - cy) ** 2 + (x - cx) ** 2 < radius**2
        image[disc] = rng.uniform(0, 255, 3) + 10 * np.sin(x[disc] / 5)[:, None]
    for _ in range(6):
        top, left = rng.integers(0, height - 60), rng.integers(0, width - 60)
        image[top : top + rng.integers(20, 120), left : left + rng.integers(20, 160)] = rng.uniform(
            0, 255, 3
        )
    image += rng.normal(0, 2.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def typical_observation() -> wire.Observation:
    rng = np.random.default_rng(0)
    return wire.Observation(
        state=rng.standard_normal(STATE_DIM).astype(np.float32),
        images={name: synthetic_frame(seed) for seed, name in enumerate(CAMERAS)},
        task="pick up the red cube and place it in the bin",
        inference_delay_steps=3,
    )


def typical_chunk() -> wire.ActionChunk:
    rng = np.random.default_rng(1)
    chunk = rng.standard_normal((CHUNK_T, STATE_DIM)).astype(np.float32)
    return wire.ActionChunk(
        chunk_model=chunk, chunk_robot=chunk * 2, queue_wait_ms=0.4, inference_ms=37.5
    )


def as_plain_dict(message: wire.Observation | wire.ActionChunk) -> dict[str, Any]:
    """The same content as a dict of arrays, the shape peers serialise."""
    if isinstance(message, wire.Observation):
        return {
            "state": message.state,
            "images": dict(message.images),
            "task": message.task,
            "inference_delay_steps": message.inference_delay_steps,
        }
    return {
        "chunk_model": message.chunk_model,
        "chunk_robot": message.chunk_robot,
        "queue_wait_ms": message.queue_wait_ms,
        "inference_ms": message.inference_ms,
    }


def measure(encode: Callable[[], bytes], decode: Callable[[bytes], object], n: int) -> dict:
    """p50/p99 of one encode+decode round trip, and the encoded size."""
    data = encode()
    decode(data)
    times = sorted(timed_ms(lambda: decode(encode()), n))
    p50 = statistics.median(times)
    return {
        "p50_ms": p50,
        "p99_ms": times[min(n - 1, round(0.99 * (n - 1)))],
        "bytes": len(data),
        "p50_plus_link_ms": p50 + len(data) * 8 / (LINK_MBIT_S * 1e3),
        "iterations": n,
    }


def peers(plain: dict[str, Any]) -> dict[str, tuple[Callable[[], bytes], Callable]]:
    from openpi_client import msgpack_numpy

    return {
        "pickle protocol 5": (
            lambda: pickle.dumps(plain, protocol=5),
            pickle.loads,  # the peer being measured; policylink itself never unpickles
        ),
        "openpi msgpack-numpy": (lambda: msgpack_numpy.packb(plain), msgpack_numpy.unpackb),
    }


def check_observation_round_trip(obs: wire.Observation) -> None:
    """Benchmarks that measure a broken codec are worse than none."""
    back = wire.decode_observation(wire.encode_observation(obs, jpeg_quality=0))
    assert all(np.array_equal(back.images[k], v) for k, v in obs.images.items())
    back = wire.decode_observation(wire.encode_observation(obs, jpeg_quality=JPEG_QUALITY))
    for name, image in obs.images.items():
        error = np.abs(back.images[name].astype(np.int16) - image).mean()
        assert error < 4, f"JPEG round trip of {name} is off by {error:.1f} on average"


def bench_observation(n: int) -> dict[str, dict]:
    obs = typical_observation()
    check_observation_round_trip(obs)
    candidates = {
        f"policylink jpeg q{JPEG_QUALITY}": (
            lambda: wire.encode_observation(obs, jpeg_quality=JPEG_QUALITY),
            wire.decode_observation,
        ),
        "policylink raw": (
            lambda: wire.encode_observation(obs, jpeg_quality=0),
            wire.decode_observation,
        ),
        **peers(as_plain_dict(obs)),
    }
    return {name: measure(enc, dec, n) for name, (enc, dec) in candidates.items()}


def bench_chunk(n: int) -> dict[str, dict]:
    chunk = typical_chunk()
    candidates = {
        "policylink": (lambda: wire.encode_action_chunk(chunk), wire.decode_action_chunk),
        **peers(as_plain_dict(chunk)),
    }
    return {name: measure(enc, dec, n) for name, (enc, dec) in candidates.items()}


def bench_jpeg_codecs(n: int) -> dict[str, dict]:
    import simplejpeg
    from PIL import Image

    frame = synthetic_frame(0)

    def pil_encode() -> bytes:
        out = io.BytesIO()
        Image.fromarray(frame).save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=2)
        return out.getvalue()

    def pil_decode(data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def simplejpeg_encode() -> bytes:
        return wire.encode_image(frame, JPEG_QUALITY)["data"]

    def simplejpeg_decode(data: bytes) -> np.ndarray:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=True)

    results = {}
    for name, encode, decode in (
        ("simplejpeg", simplejpeg_encode, simplejpeg_decode),
        ("pillow", pil_encode, pil_decode),
    ):
        data = encode()
        results[name] = {
            "encode": measure(encode, lambda _: None, n),
            "decode": measure(lambda data=data: data, decode, n),
            "bytes": len(data),
        }
    return results


def ratios(table: dict[str, dict], ours: str, key: str) -> dict[str, float]:
    """ours / peer: below 1 means policylink is faster or smaller."""
    return {
        name: table[ours][key] / row[key]
        for name, row in table.items()
        if not name.startswith("policylink")
    }


def print_table(title: str, table: dict[str, dict], ours: list[str]) -> None:
    peer_names = [name for name in table if not name.startswith("policylink")]
    print(f"\n{title}")
    header = f"{'codec':<24}{'p50 ms':>9}{'p99 ms':>9}{'KiB':>9}{f'+{LINK_MBIT_S}Mbit ms':>14}"
    for peer in peer_names:
        header += f"  {'time/' + peer.split()[0]:>13}{'size/' + peer.split()[0]:>13}"
    print(header)
    for name, row in table.items():
        line = (
            f"{name:<24}{row['p50_ms']:>9.3f}{row['p99_ms']:>9.3f}{row['bytes'] / 1024:>9.1f}"
            f"{row['p50_plus_link_ms']:>14.2f}"
        )
        if name in ours:
            for peer in peer_names:
                time_ratio = row["p50_ms"] / table[peer]["p50_ms"]
                size_ratio = row["bytes"] / table[peer]["bytes"]
                line += f"  {time_ratio:>12.2f}x{size_ratio:>12.2f}x"
        print(line)


def print_jpeg_table(codecs: dict[str, dict]) -> None:
    print(f"\nJPEG codec, one {HEIGHT}x{WIDTH} frame, q{JPEG_QUALITY} 4:2:0")
    print(f"{'codec':<14}{'encode p50':>12}{'decode p50':>12}{'KiB':>8}")
    for name, row in codecs.items():
        print(
            f"{name:<14}{row['encode']['p50_ms']:>10.3f}ms{row['decode']['p50_ms']:>10.3f}ms"
            f"{row['bytes'] / 1024:>8.1f}"
        )
    fast, slow = codecs["simplejpeg"], codecs["pillow"]
    print(
        f"simplejpeg/pillow: encode {fast['encode']['p50_ms'] / slow['encode']['p50_ms']:.2f}x, "
        f"decode {fast['decode']['p50_ms'] / slow['decode']['p50_ms']:.2f}x"
    )


def run(quick: bool = False) -> dict:
    n_obs, n_chunk, n_jpeg = (5, 50, 5) if quick else (200, 2000, 200)
    observation = bench_observation(n_obs)
    chunk = bench_chunk(n_chunk)
    codecs = bench_jpeg_codecs(n_jpeg)
    cams = f"{len(CAMERAS)}x {HEIGHT}x{WIDTH} RGB"
    print_table(
        f"observation: state float32[{STATE_DIM}] + {cams}, encode+decode",
        observation,
        [f"policylink jpeg q{JPEG_QUALITY}", "policylink raw"],
    )
    print_table(f"action chunk: 2x float32[{CHUNK_T}, {STATE_DIM}]", chunk, ["policylink"])
    print_jpeg_table(codecs)
    return {
        "observation": observation,
        "chunk": chunk,
        "jpeg_codec": codecs,
        "ratios": {
            "observation_jpeg_time": ratios(
                observation, f"policylink jpeg q{JPEG_QUALITY}", "p50_ms"
            ),
            "observation_jpeg_bytes": ratios(
                observation, f"policylink jpeg q{JPEG_QUALITY}", "bytes"
            ),
            "observation_raw_time": ratios(observation, "policylink raw", "p50_ms"),
            "observation_raw_bytes": ratios(observation, "policylink raw", "bytes"),
            "observation_jpeg_time_plus_link": ratios(
                observation, f"policylink jpeg q{JPEG_QUALITY}", "p50_plus_link_ms"
            ),
            "chunk_time": ratios(chunk, "policylink", "p50_ms"),
            "chunk_bytes": ratios(chunk, "policylink", "bytes"),
        },
    }
