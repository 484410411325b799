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


def _window(
    image: np.ndarray, rows: tuple[float, float], cols: tuple[float, float]
) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """The clipped pixel box spanning `rows` x `cols`, with its row and column coordinates."""
    height, width = image.shape[:2]
    r0, r1 = max(int(np.floor(rows[0])), 0), min(int(np.ceil(rows[1])) + 1, height)
    c0, c1 = max(int(np.floor(cols[0])), 0), min(int(np.ceil(cols[1])) + 1, width)
    if r0 >= r1 or c0 >= c1:
        return None
    return (
        slice(r0, r1),
        slice(c0, c1),
        np.arange(r0, r1, dtype=np.float32)[:, None],
        np.arange(c0, c1, dtype=np.float32)[None, :],
    )


def _fill_disk(
    image: np.ndarray, centre: tuple[float, float], radius: float, colour: np.ndarray
) -> None:
    row, col = centre
    box = _window(image, (row - radius, row + radius), (col - radius, col + radius))
    if box is None:
        return
    row_slice, col_slice, rows, cols = box
    inside = (rows - row) ** 2 + (cols - col) ** 2 <= radius**2
    image[row_slice, col_slice][inside] = colour


def _fill_segment(
    image: np.ndarray,
    start: tuple[float, float],
    end: tuple[float, float],
    half_width: float,
    colour: np.ndarray,
) -> None:
    (r0, c0), (r1, c1) = start, end
    box = _window(
        image,
        (min(r0, r1) - half_width, max(r0, r1) + half_width),
        (min(c0, c1) - half_width, max(c0, c1) + half_width),
    )
    if box is None:
        return
    row_slice, col_slice, rows, cols = box
    dr, dc = r1 - r0, c1 - c0
    length2 = max(dr * dr + dc * dc, 1e-9)
    along = np.clip(((rows - r0) * dr + (cols - c0) * dc) / length2, 0.0, 1.0)
    inside = (rows - r0 - along * dr) ** 2 + (cols - c0 - along * dc) ** 2 <= half_width**2
    image[row_slice, col_slice][inside] = colour
