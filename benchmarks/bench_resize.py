"""Resize to the policy: what shrinking a 480x640 frame to 224x224 on the robot costs and saves.

Two paths for one camera frame (`benchmarks.frames`), side by side at each JPEG quality:

- **robot**: resize (`wire.image.resize_image`, Pillow's area filter), encode, send, decode;
- **server**: encode the full frame, send, decode, resize on the server (what a robot that does
  not resize gets).

Reported: bytes sent, the robot's CPU per frame (resize + encode) and the server's (decode,
plus resize for the full frame), and the quality of what reaches the policy as PSNR against the
codec-free resize of the raw frame. The resize filter is compared with Pillow's bilinear and
Lanczos on the same frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import simplejpeg
from PIL import Image

from benchmarks.frames import camera_frame
from benchmarks.timing import percentile, timed_ms
from policylink.wire.image import resize_image

HEIGHT, WIDTH, TARGET = 480, 640, 224
QUALITIES = (90, 75, 50)


def _encode(image: np.ndarray, quality: int) -> bytes:
    return simplejpeg.encode_jpeg(image, quality, "RGB", "420", True)


def _decode(data: bytes) -> np.ndarray:
    return simplejpeg.decode_jpeg(data, "RGB", True, True)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse) if mse else float("inf")


def _ms(step: Any, repeats: int) -> float:
    step()
    return percentile(timed_ms(step, repeats), 50)


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 20 if quick else 200
    frame = camera_frame(3, HEIGHT, WIDTH)
    exact = resize_image(frame, TARGET, TARGET)
    filters = {
        "pillow box (used)": lambda: resize_image(frame, TARGET, TARGET),
        "pillow bilinear": lambda: np.asarray(
            Image.fromarray(frame).resize((TARGET, TARGET), Image.Resampling.BILINEAR)
        ),
        "pillow lanczos": lambda: np.asarray(
            Image.fromarray(frame).resize((TARGET, TARGET), Image.Resampling.LANCZOS)
        ),
    }
    resize = {name: {"ms": _ms(step, repeats)} for name, step in filters.items()}
    rows = {}
    for quality in QUALITIES:
        small, full = _encode(exact, quality), _encode(frame, quality)
        on_robot = _decode(small)
        on_server = resize_image(_decode(full), TARGET, TARGET)
        rows[f"q{quality}"] = {
            "bytes_robot": len(small),
            "bytes_server": len(full),
            "byte_ratio": len(full) / len(small),
            "robot_ms_resize_encode": _ms(
                lambda q=quality: _encode(resize_image(frame, TARGET, TARGET), q), repeats
            ),
            "robot_ms_encode_full": _ms(lambda q=quality: _encode(frame, q), repeats),
            "server_ms_decode_small": _ms(lambda s=small: _decode(s), repeats),
            "server_ms_decode_resize_full": _ms(
                lambda f=full: resize_image(_decode(f), TARGET, TARGET), repeats
            ),
            "psnr_db_robot_resize": _psnr(on_robot, exact),
            "psnr_db_server_resize": _psnr(on_server, exact),
        }
    for name, row in resize.items():
        print(f"resize {HEIGHT}x{WIDTH} -> {TARGET}x{TARGET} {name}: {row['ms']:.2f} ms")
    for name, row in rows.items():
        print(
            f"{name}: {row['bytes_server']} B -> {row['bytes_robot']} B ({row['byte_ratio']:.1f}x "
            f"fewer); robot {row['robot_ms_resize_encode']:.2f} ms (full frame "
            f"{row['robot_ms_encode_full']:.2f}); server {row['server_ms_decode_small']:.2f} ms "
            f"(full frame {row['server_ms_decode_resize_full']:.2f}); PSNR robot-resize "
            f"{row['psnr_db_robot_resize']:.1f} dB, server-resize "
            f"{row['psnr_db_server_resize']:.1f} dB"
        )
    return {"resize_filters": resize, "by_quality": rows}
