"""Handwritten signatures as inline SVG, for the signature boxes of the printed forms.

A `Signature` is strokes of (x, y, t, pressure) points on a width×height pad, in CSS pixels. Here
it becomes an `<svg>` element the size of the box it is drawn into: the ink's bounding box is
scaled to fit the box (keeping the aspect ratio, centred, never enlarged more than `MAX_ZOOM`
times the pad's own fit, so a short mark does not swell to fill the box), and each stroke is
drawn as quadratic Bézier curves through the midpoints of its points (smooth, and through the
drawn path's corners), its width following the pen's pressure: min + pressure × range, in
millimetres on paper, with round caps and joins.

A width change needs a new path (SVG has no variable-width stroke), so the pressure is quantised
into `LEVELS` steps and neighbouring segments at the same step share one path: a signature of a
few hundred points becomes a few dozen paths rather than hundreds, and points that lie within
`SIMPLIFY_MM` of the line through their neighbours are dropped first (Ramer–Douglas–Peucker):
WeasyPrint parses and draws every path command, ~13 ms for an unsimplified signature on each form. The PDF gets vector paths; nothing is rasterised. No strokes, no points: "" (the box
stays empty).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.domain.cases import Signature, StrokePoint

__all__ = ["SignatureStyle", "signature_svg"]

LEVELS = 5  # pressure steps (distinct line widths)
MIN_RUN = 3  # segments: a shorter run at another step keeps the width before it
MAX_ZOOM = 2.0  # at most this many times the scale that fits the whole pad into the box
SIMPLIFY_MM = 0.06  # points closer than this to the line through their neighbours are dropped


@dataclass(frozen=True, slots=True)
class SignatureStyle:
    """Line widths in millimetres on paper, and the ink colour."""

    min_width: float = 0.22
    max_width: float = 0.75
    padding: float = 1.0  # mm kept clear inside the box
    colour: str = "#000"


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def _finite(stroke: Sequence[StrokePoint]) -> list[StrokePoint]:
    return [pt for pt in stroke if math.isfinite(pt.x) and math.isfinite(pt.y)]


def signature_svg(
    signature: Signature | None,
    width_mm: float,
    height_mm: float,
    style: SignatureStyle = SignatureStyle(),
) -> str:
    """`signature` drawn into a `width_mm` × `height_mm` box as an inline `<svg>` element, or ""
    when there is nothing to draw."""
    if signature is None or width_mm <= 0 or height_mm <= 0:
        return ""
    strokes = [points for points in (_finite(s) for s in signature.strokes) if points]
    if not strokes:
        return ""
    xs = [pt.x for s in strokes for pt in s]
    ys = [pt.y for s in strokes for pt in s]
    left, top = min(xs), min(ys)
    ink_w, ink_h = max(xs) - left, max(ys) - top

    inner_w = max(width_mm - 2 * style.padding - style.max_width, 0.1)
    inner_h = max(height_mm - 2 * style.padding - style.max_width, 0.1)
    pad_fit = min(
        inner_w / signature.width if signature.width > 0 else math.inf,
        inner_h / signature.height if signature.height > 0 else math.inf,
    )
    if not math.isfinite(pad_fit):
        pad_fit = min(inner_w / ink_w if ink_w > 0 else 1.0, inner_h / ink_h if ink_h > 0 else 1.0)
    scale = min(
        inner_w / ink_w if ink_w > 0 else math.inf,
        inner_h / ink_h if ink_h > 0 else math.inf,
        pad_fit * MAX_ZOOM,
    )
    off_x = (width_mm - ink_w * scale) / 2
    off_y = (height_mm - ink_h * scale) / 2

    def at(pt: StrokePoint) -> tuple[float, float]:
        return off_x + (pt.x - left) * scale, off_y + (pt.y - top) * scale

    width_range = style.max_width - style.min_width

    def level(pressure: float) -> int:
        p = _clamp(pressure if math.isfinite(pressure) else 0.5, 0.0, 1.0)
        return min(int(p * LEVELS), LEVELS - 1)

    def line_width(step: int) -> float:
        return style.min_width + (step + 0.5) / LEVELS * width_range

    parts: list[str] = []
    for stroke in strokes:
        points = [at(pt) for pt in stroke]
        if len(points) == 1 or all(
            abs(x - points[0][0]) < 1e-6 and abs(y - points[0][1]) < 1e-6 for x, y in points
        ):
            x, y = points[0]
            radius = line_width(level(stroke[0].p)) / 2
            parts.append(f'<circle cx="{x:.2f}" cy="{y:.2f}" r="{radius:.3f}"/>')
            continue
        kept = _simplify(points, SIMPLIFY_MM)
        steps = _steady([level(stroke[i].p) for i in kept], MIN_RUN)
        parts.extend(_stroke_paths([points[i] for i in kept], steps, line_width))

    return (
        f'<svg class="signature-ink" xmlns="http://www.w3.org/2000/svg" width="{width_mm:.2f}mm" '
        f'height="{height_mm:.2f}mm" viewBox="0 0 {width_mm:.2f} {height_mm:.2f}">'
        f'<g fill="{style.colour}" stroke="{style.colour}" stroke-linecap="round" '
        f'stroke-linejoin="round">{"".join(parts)}</g></svg>'
    )


def _steady(steps: list[int], min_run: int) -> list[int]:
    """Pressure steps with short runs folded into the run before them: each run is a path of its
    own, and WeasyPrint's cost is per path; a width held a few segments longer does not show."""
    steady = list(steps)
    start = 0
    while start < len(steady):
        end = start
        while end < len(steady) and steps[end] == steps[start]:
            end += 1
        if start > 0 and end - start < min_run and end < len(steady):
            steady[start:end] = [steady[start - 1]] * (end - start)
        start = end
    return steady


def _simplify(points: list[tuple[float, float]], tolerance: float) -> list[int]:
    """Indexes of the points to keep (Ramer–Douglas–Peucker, in paper millimetres): a pen samples
    60–240 times a second, and most points lie on the line through their neighbours. Each path
    command costs WeasyPrint time to draw; fewer points draw the same curve on paper."""
    if len(points) <= 2:
        return list(range(len(points)))
    keep = {0, len(points) - 1}
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        (x1, y1), (x2, y2) = points[first], points[last]
        dx, dy = x2 - x1, y2 - y1
        length = math.hypot(dx, dy)
        farthest, distance = -1, tolerance
        for i in range(first + 1, last):
            px, py = points[i]
            d = abs(dy * (px - x1) - dx * (py - y1)) / length if length > 0 else math.hypot(px - x1, py - y1)
            if d > distance:
                farthest, distance = i, d
        if farthest >= 0:
            keep.add(farthest)
            stack.append((first, farthest))
            stack.append((farthest, last))
    return sorted(keep)


def _stroke_paths(
    points: list[tuple[float, float]], levels: list[int], line_width: Callable[[int], float]
) -> list[str]:
    """One stroke as paths: segment i runs from the midpoint before point i to the midpoint after
    it, curving through point i (the first and last segments start / end at the end points), with
    the width of point i's pressure step; runs of segments at one step share a path."""
    count = len(points)

    def mid(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2

    paths: list[str] = []
    current_level: int | None = None
    commands: list[str] = []

    def flush() -> None:
        if commands and current_level is not None:
            paths.append(
                f'<path fill="none" stroke-width="{line_width(current_level):.3f}" d="{"".join(commands)}"/>'
            )

    if count == 2:
        (x0, y0), (x1, y1) = points
        step = max(levels)
        return [
            f'<path fill="none" stroke-width="{line_width(step):.3f}" d="M{x0:.2f} {y0:.2f}L{x1:.2f} {y1:.2f}"/>'
        ]

    for i in range(1, count - 1):
        start = points[0] if i == 1 else mid(points[i - 1], points[i])
        end = points[-1] if i == count - 2 else mid(points[i], points[i + 1])
        control = points[i]
        step = levels[i]
        if step != current_level:
            flush()
            commands = [f"M{start[0]:.2f} {start[1]:.2f}"]
            current_level = step
        commands.append(f"Q{control[0]:.2f} {control[1]:.2f} {end[0]:.2f} {end[1]:.2f}")
    flush()
    return paths
