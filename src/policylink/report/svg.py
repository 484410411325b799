"""Plots as inline SVG strings: a report that opens anywhere, offline, with no script to run.

Four chart shapes cover the demo: lines over time, overlaid histograms, grouped bars and
state timelines. Each takes plain lists, so the JSON next to the report holds exactly what
was drawn.

Lines that share values would hide one another (two engines both at 100 % success), so a line
drawn over an earlier one is lifted a few pixels where they meet, dashed so the one below shows
through, and, when it coincides with that line everywhere, its legend says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
HEIGHT = 300
_MARGIN = (28, 20, 44, 58)  # top, right, bottom, left
_AXIS = "#555"
_GRID = "#e4e4e4"
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'
# A point closer than this to an earlier line's point (pixels, each axis) would hide under it.
_COINCIDENT_PX = 1.0
_LIFT_PX = 3.0
_DASHES = ("6 3", "2 3", "8 3 2 3")
_MARKERS = ("circle", "square", "triangle", "diamond", "triangle-down")
_MARKER_R = 3.5


@dataclass(frozen=True)
class Series:
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    colour: str


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    label: str


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.2g}"


class _Frame:
    """Maps data to pixels inside the margins and draws axes with grid lines."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        self.x_ticks = nice_ticks(*x_range)
        self.y_ticks = nice_ticks(*y_range)
        self.x0, self.x1 = self.x_ticks[0], self.x_ticks[-1]
        self.y0, self.y1 = self.y_ticks[0], self.y_ticks[-1]
        top, right, bottom, left = _MARGIN
        self.left, self.right = left, WIDTH - right
        self.top, self.bottom = top, HEIGHT - bottom

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def bar(self, x: float, width: float, value: float, fill: str) -> str:
        """A bar standing on the x axis up to `value`; `fill` holds its fill attributes."""
        y = self.y(value)
        return (
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{self.bottom - y:.1f}" {fill}/>'
        )

    def axes(
        self, x_label: str, y_label: str, *, x_ticks: bool = True, y_ticks: bool = True
    ) -> list[str]:
        parts = []
        for tick in self.y_ticks if y_ticks else []:
            y = self.y(tick)
            parts.append(
                f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.right}" y2="{y:.1f}" '
                f'stroke="{_GRID}"/>'
                f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>'
                f"{_label(tick)}</text>"
            )
        if x_ticks:
            for tick in self.x_ticks:
                x = self.x(tick)
                parts.append(
                    f'<text x="{x:.1f}" y="{self.bottom + 16}" text-anchor="middle" {_FONT}>'
                    f"{_label(tick)}</text>"
                )
        parts.append(
            f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}" '
            f'stroke="{_AXIS}"/><line x1="{self.left}" y1="{self.top}" x2="{self.left}" '
            f'y2="{self.bottom}" stroke="{_AXIS}"/>'
            f'<text x="{(self.left + self.right) / 2}" y="{HEIGHT - 8}" text-anchor="middle" '
            f"{_FONT}>{escape(x_label)}</text>"
            f'<text transform="translate(14 {(self.top + self.bottom) / 2}) rotate(-90)" '
            f'text-anchor="middle" {_FONT}>{escape(y_label)}</text>'
        )
        return parts


def _square(x: float, colour: str) -> str:
    return f'<rect x="{x}" y="8" width="10" height="10" fill="{colour}"/>'


def _svg(
    title: str,
    body: list[str],
    legend: list[tuple[str, str]],
    swatches: Sequence[str] | None = None,
) -> str:
    """`swatches` (one per legend entry, each 20 px wide from x=0) replace the colour squares."""
    items = []
    x = _MARGIN[3]
    for index, (name, colour) in enumerate(legend):
        if swatches is None:
            swatch, width = _square(x, colour), 10
        else:
            swatch, width = f'<g transform="translate({x} 0)">{swatches[index]}</g>', 20
        items.append(f'{swatch}<text x="{x + width + 4}" y="17" {_FONT}>{escape(name)}</text>')
        x += width + 12 + 7 * len(name)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" '
        f'aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}">' + "".join(body + items) + "</svg>"
    )


def _empty(title: str) -> str:
    return _svg(
        title,
        [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" {_FONT}>no data</text>'],
        [],
    )


def _marker(shape: str, x: float, y: float, colour: str) -> str:
    r = _MARKER_R
    paint = f'fill="{colour}" stroke="#fff" stroke-width="0.8"'
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" {paint}/>'
    if shape == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}" {paint}/>'
    corners = {
        "triangle": ((0, -r * 1.2), (r * 1.1, r * 0.8), (-r * 1.1, r * 0.8)),
        "triangle-down": ((0, r * 1.2), (r * 1.1, -r * 0.8), (-r * 1.1, -r * 0.8)),
        "diamond": ((0, -r * 1.3), (r * 1.1, 0), (0, r * 1.3), (-r * 1.1, 0)),
    }[shape]
    path = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in corners)
    return f'<polygon points="{path}" {paint}/>'


def _near(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) < _COINCIDENT_PX and abs(a[1] - b[1]) < _COINCIDENT_PX


def line_chart(
    title: str, series: Sequence[Series], x_label: str, y_label: str, *, markers: bool = False
) -> str:
    """One polyline per series; `markers` puts a shape of its own on each point and in the
    legend (for sparse series such as a sweep, where a point under another's must still show)."""
    points = [(x, y) for s in series for x, y in zip(s.xs, s.ys, strict=True)]
    if not points:
        return _empty(title)
    xs, ys = zip(*points, strict=True)
    frame = _Frame((min(xs), max(xs)), (min(0.0, *ys), max(ys)))
    body = frame.axes(x_label, y_label)
    drawn: list[tuple[Series, list[tuple[float, float]]]] = []
    legend, swatches = [], []
    for index, s in enumerate(series):
        pixels = [(frame.x(x), frame.y(y)) for x, y in zip(s.xs, s.ys, strict=True)]
        # How many earlier lines each point would hide under: lift it that many steps.
        under = [sum(any(_near(p, q) for q in earlier) for _, earlier in drawn) for p in pixels]
        lifted = [(x, y - _LIFT_PX * n) for (x, y), n in zip(pixels, under, strict=True)]
        dash = _DASHES[(index - 1) % len(_DASHES)] if any(under) else ""
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        shape = _MARKERS[index % len(_MARKERS)]
        if lifted:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in lifted)
            body.append(
                f'<polyline fill="none" stroke="{s.colour}" stroke-width="1.5"{dash_attr} '
                f'points="{path}"/>'
            )
        if markers:
            body.extend(_marker(shape, x, y, s.colour) for x, y in lifted)
        same_as = next(
            (
                other.name
                for other, earlier in drawn
                if pixels
                and len(earlier) == len(pixels)
                and all(_near(p, q) for p, q in zip(pixels, earlier, strict=True))
            ),
            None,
        )
        legend.append((s.name if same_as is None else f"{s.name} (= {same_as})", s.colour))
        swatches.append(
            f'<line x1="0" y1="13" x2="20" y2="13" stroke="{s.colour}" stroke-width="2"'
            f"{dash_attr}/>{_marker(shape, 10, 13, s.colour)}"
        )
        drawn.append((s, pixels))
    return _svg(title, body, legend, swatches if markers else None)


def histogram(
    title: str, groups: Sequence[tuple[str, Sequence[float], str]], x_label: str, bins: int = 30
) -> str:
    """Overlaid, semi-transparent histograms sharing one set of bins."""
    values = [v for _, vs, _ in groups for v in vs]
    if not values:
        return _empty(title)
    low, high = min(values), max(values)
    width = (high - low) / bins if high > low else 1.0
    counts = []
    for _, group, _ in groups:
        row = [0] * bins
        for value in group:
            row[min(int((value - low) / width), bins - 1)] += 1
        counts.append(row)
    frame = _Frame((low, low + width * bins), (0.0, max(max(row) for row in counts)))
    body = frame.axes(x_label, "requests")
    for (_, _, colour), row in zip(groups, counts, strict=True):
        for index, count in enumerate(row):
            if not count:
                continue
            x0, x1 = frame.x(low + index * width), frame.x(low + (index + 1) * width)
            fill = f'fill="{colour}" fill-opacity="0.6"'
            body.append(frame.bar(x0, max(x1 - x0 - 1, 1), count, fill))
    return _svg(title, body, [(name, colour) for name, _, colour in groups])


def bar_chart(
    title: str,
    categories: Sequence[str],
    groups: Sequence[tuple[str, Sequence[float | None], str]],
    y_label: str,
) -> str:
    """Grouped bars, one group per category; a missing value leaves a gap."""
    values = [v for _, vs, _ in groups for v in vs if v is not None]
    if not values or not categories:
        return _empty(title)
    frame = _Frame((0.0, float(len(categories))), (0.0, max(values)))
    body = frame.axes("", y_label, x_ticks=False)
    slot = (frame.right - frame.left) / len(categories)
    bar = slot * 0.8 / len(groups)
    for index, category in enumerate(categories):
        centre = frame.left + slot * (index + 0.5)
        body.append(
            f'<text x="{centre:.1f}" y="{frame.bottom + 16}" text-anchor="middle" {_FONT}>'
            f"{escape(category)}</text>"
        )
        for position, (_, row, colour) in enumerate(groups):
            value = row[index]
            if value is None:
                continue
            x = centre - slot * 0.4 + position * bar
            body.append(frame.bar(x, bar - 1, value, f'fill="{colour}"'))
    return _svg(title, body, [(name, colour) for name, _, colour in groups])


def timeline(
    title: str,
    lanes: Sequence[tuple[str, Sequence[Segment]]],
    palette: dict[str, str],
    x_label: str,
) -> str:
    """One lane per row, coloured by the label each segment holds (e.g. engine states)."""
    ends = [s.end for _, segments in lanes for s in segments]
    if not ends:
        return _empty(title)
    frame = _Frame((0.0, max(ends)), (0.0, float(len(lanes))))
    body = frame.axes(x_label, "", y_ticks=False)
    lane_height = (frame.bottom - frame.top) / len(lanes)
    for row, (name, segments) in enumerate(lanes):
        top = frame.top + row * lane_height
        body.append(
            f'<text x="{frame.left - 6}" y="{top + lane_height / 2 + 4:.1f}" text-anchor="end" '
            f"{_FONT}>{escape(name)}</text>"
        )
        for segment in segments:
            x0, x1 = frame.x(segment.start), frame.x(segment.end)
            body.append(
                f'<rect x="{x0:.1f}" y="{top + 3:.1f}" width="{max(x1 - x0, 0.5):.1f}" '
                f'height="{lane_height - 6:.1f}" fill="{palette.get(segment.label, "#999")}">'
                f"<title>{escape(segment.label)}</title></rect>"
            )
    used = [label for label in palette if any(s.label == label for _, ss in lanes for s in ss)]
    return _svg(title, body, [(label, palette[label]) for label in used])
