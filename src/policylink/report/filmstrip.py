"""Stills of what a robot saw: a few evenly spaced frames of a recorded camera, as JPEG."""

from __future__ import annotations

import numpy as np
import simplejpeg

from policylink.episodes.reader import Episode

STILL_WIDTH = 160


def stills(episode: Episode, camera: str, count: int = 8) -> list[tuple[str, bytes]]:
    """`count` frames spread over the episode, each `(label, JPEG)`, labelled by its time."""
    frames = list(episode.frames(camera))
    if not frames:
        return []
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    out = []
    for index in picks:
        tick, image = frames[index]
        step = max(1, image.shape[1] // STILL_WIDTH)
        small = np.ascontiguousarray(image[::step, ::step])
        jpeg = simplejpeg.encode_jpeg(small, quality=80, colorspace="RGB", colorsubsampling="420")
        out.append((f"{camera} t={tick / episode.fps:.1f} s", jpeg))
    return out
