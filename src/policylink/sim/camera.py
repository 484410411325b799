"""Camera images of the simulated arm, drawn with numpy in well under a millisecond per frame.

Four robots at 30 Hz share two cores with the server in the demo, so a frame is a copy of a
pre-drawn background plus a handful of shapes, each filled only inside its bounding box.
Images are HxWx3 uint8 RGB, the convention the wire codec enforces.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

VIEWS = ("top", "wrist")

_TABLE = np.array([206, 196, 178], dtype=np.uint8)
_GRID = np.array([186, 175, 156], dtype=np.uint8)
_TARGET = np.array([214, 48, 49], dtype=np.uint8)
_LINK = np.array([90, 98, 112], dtype=np.uint8)
_JOINT = np.array([40, 44, 52], dtype=np.uint8)
_EFFECTOR = np.array([30, 110, 220], dtype=np.uint8)
_GRID_SPACING_M = 0.1
_TARGET_RADIUS_M = 0.02
_LINK_HALF_WIDTH_M = 0.015
_JOINT_RADIUS_M = 0.022
_EFFECTOR_RADIUS_M = 0.012
_WRIST_ZOOM = 3.0


@dataclass(frozen=True)
class CameraConfig:
    """One camera: `top` sees the whole workspace, `wrist` follows the end effector closely."""

    name: str
    height: int = 480
    width: int = 640
    view: str = "top"

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(
                f"camera {self.name!r}: view must be one of {VIEWS}, got {self.view!r}"
            )
        if not (16 <= self.height <= 4096 and 16 <= self.width <= 4096):
            raise ValueError(
                f"camera {self.name!r}: {self.height}x{self.width} is outside 16..4096 pixels"
            )


class Camera:
    """Draws one camera's view; the background is drawn once, at construction."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        height, width = config.height, config.width
        self._scale = min(height, 0.75 * width)
        if config.view == "wrist":
            self._scale *= _WRIST_ZOOM
        self._background = np.empty((height, width, 3), dtype=np.uint8)
        self._background[:] = _TABLE
        if config.view == "top":
            self._draw_grid()

    def _origin(self, end_effector: np.ndarray) -> tuple[float, float]:
        """Pixel (row, column) of the world origin: the base, or relative to the end effector."""
        height, width = self.config.height, self.config.width
        if self.config.view == "top":
            return 0.85 * height, width / 2
        return height / 2 + end_effector[0] * self._scale, width / 2 + end_effector[1] * self._scale

    def _draw_grid(self) -> None:
        row0, col0 = self._origin(np.zeros(2))
        spacing = _GRID_SPACING_M * self._scale
        rows = (np.arange(self.config.height) - row0) % spacing < 1.0
        cols = (np.arange(self.config.width) - col0) % spacing < 1.0
        self._background[rows, :] = _GRID
        self._background[:, cols] = _GRID

    def render(self, points: np.ndarray, target: np.ndarray) -> np.ndarray:
        """`points` are the arm's `[4, 2]` joint positions in metres (x forward, y left)."""
        image = self._background.copy()
        row0, col0 = self._origin(points[-1])

        def pixel(point: np.ndarray) -> tuple[float, float]:
            return row0 - point[0] * self._scale, col0 - point[1] * self._scale

        _fill_disk(image, pixel(target), _TARGET_RADIUS_M * self._scale, _TARGET)
        for start, end in itertools.pairwise(points):
            _fill_segment(image, pixel(start), pixel(end), _LINK_HALF_WIDTH_M * self._scale, _LINK)
        for joint in points[:-1]:
            _fill_disk(image, pixel(joint), _JOINT_RADIUS_M * self._scale, _JOINT)
        _fill_disk(image, pixel(points[-1]), _EFFECTOR_RADIUS_M * self._scale, _EFFECTOR)
        return image


def _fill_rows(
    image: np.ndarray, first_row: int, left: np.ndarray, right: np.ndarray, colour: np.ndarray
) -> None:
    """Paint row `first_row + i` from `left[i]` to `right[i]` (pixel centres; NaN = nothing).

    One slice assignment per row costs far less than a mask over the bounding box once a
    shape is long or thick (a link crossing the zoomed wrist view).
    """
    height, width = image.shape[:2]
    valid = ~(np.isnan(left) | np.isnan(right))
    rows = np.flatnonzero(valid) + first_row
    starts = np.clip(np.ceil(left[valid]), 0, width).astype(np.int64)
    stops = np.clip(np.floor(right[valid]) + 1, 0, width).astype(np.int64)
    keep = (rows >= 0) & (rows < height) & (starts < stops)
    for row, start, stop in zip(
        rows[keep].tolist(), starts[keep].tolist(), stops[keep].tolist(), strict=True
    ):
        image[row, start:stop] = colour


def _rows(low: float, high: float) -> np.ndarray:
    return np.arange(int(np.ceil(low)), int(np.floor(high)) + 1, dtype=np.float64)


def _disk_spans(
    rows: np.ndarray, centre: tuple[float, float], radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Column interval of a disk on each row (NaN where the row misses it)."""
    row, col = centre
    reach2 = radius**2 - (rows - row) ** 2
    half = np.sqrt(np.where(reach2 >= 0, reach2, np.nan))
    return col - half, col + half


def _fill_disk(
    image: np.ndarray, centre: tuple[float, float], radius: float, colour: np.ndarray
) -> None:
    rows = _rows(centre[0] - radius, centre[0] + radius)
    if rows.size:
        _fill_rows(image, int(rows[0]), *_disk_spans(rows, centre, radius), colour)


def _fill_segment(
    image: np.ndarray,
    start: tuple[float, float],
    end: tuple[float, float],
    half_width: float,
    colour: np.ndarray,
) -> None:
    """A capsule: every pixel within `half_width` of the segment, filled row by row.

    The capsule is convex, so each row meets it in one interval: the widest of the intervals
    given by its rectangular body and its two round ends.
    """
    height = image.shape[0]
    (r0, c0), (r1, c1) = start, end
    low = max(min(r0, r1) - half_width, 0.0)
    high = min(max(r0, r1) + half_width, height - 1.0)
    rows = _rows(low, high)
    if not rows.size:
        return
    left = np.full(rows.shape, np.nan)
    right = np.full(rows.shape, np.nan)
    for cap in (start, end):
        cap_left, cap_right = _disk_spans(rows, cap, half_width)
        left, right = np.fmin(left, cap_left), np.fmax(right, cap_right)
    length = np.hypot(r1 - r0, c1 - c0)
    if length > 1e-9:
        normal_r, normal_c = -(c1 - c0) / length * half_width, (r1 - r0) / length * half_width
        corners = [
            (r0 + normal_r, c0 + normal_c),
            (r1 + normal_r, c1 + normal_c),
            (r1 - normal_r, c1 - normal_c),
            (r0 - normal_r, c0 - normal_c),
        ]
        for (pr, pc), (qr, qc) in itertools.pairwise([*corners, corners[0]]):
            if abs(qr - pr) < 1e-9:
                continue
            crossing = pc + (rows - pr) * (qc - pc) / (qr - pr)
            spans = (rows >= min(pr, qr)) & (rows <= max(pr, qr))
            crossing = np.where(spans, crossing, np.nan)
            left, right = np.fmin(left, crossing), np.fmax(right, crossing)
    _fill_rows(image, int(rows[0]), left, right, colour)
