"""A synthetic camera frame for benchmarks that send images.

Pure noise would make JPEG look hopeless and a flat image would make it look free; gradients,
a few solid objects and mild sensor noise compress like a real frame, so encode and decode
times and byte counts land where a real camera's would.
"""

from __future__ import annotations

import numpy as np


def camera_frame(seed: int, height: int, width: int) -> np.ndarray:
    """uint8 HxWx3 RGB; the same seed gives the same frame."""
    rng = np.random.default_rng(seed)
    scale = min(height, width) / 480  # objects keep their share of the view at any resolution
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [120 + 60 * x / width, 110 + 50 * y / height, 90 + 40 * (x + y) / (height + width)], -1
    )
    for _ in range(6):
        cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), scale * rng.uniform(20, 90)
        image[(y - cy) ** 2 + (x - cx) ** 2 < radius**2] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 2.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
