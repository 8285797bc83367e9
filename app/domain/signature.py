"""Handwritten signatures: checking what the signature pad sent, figures for staff, simplifying.

`static/js/signature.js` posts JSON `{"width", "height", "pointer_type", "strokes"}` with strokes
as `[[[x, y, t, p], …], …]`: CSS pixels of the pad, milliseconds since the stroke began and
pressure 0..1 (a pen's own pressure, or one worked out from the speed for touch and mouse).
`parse_signature` trusts none of it: the shape is checked, numbers must be finite, coordinates and
pressure are clamped to the pad and to 0..1, and limits keep a hostile client from sending a
megabyte of points. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NoReturn

from app.domain.cases import Signature, SignatureRole, StrokePoint

__all__ = [
    "MAX_JSON_CHARS",
    "MAX_POINTS",
    "MAX_STROKES",
    "MIN_INK_LENGTH",
    "POINTER_TYPES",
    "STORAGE_TOLERANCE",
    "SignatureError",
    "SignatureStats",
    "parse_signature",
    "signature_stats",
    "simplify",
]

MAX_STROKES = 200
MAX_POINTS = 20_000
# 20,000 points of "[1234.5,123.4,123456,0.1234]," is about 600 kB; anything far beyond is not a pad.
MAX_JSON_CHARS = 1_000_000
MAX_PAD_SIDE = 10_000.0  # CSS pixels; no screen is larger
MIN_INK_LENGTH = 30.0  # CSS pixels of line: less is a dot or a slip of the finger
MIN_EXTENT = 8.0  # the ink must span at least this much across or down
POINTER_TYPES = frozenset({"pen", "touch", "mouse"})
# RDP tolerance (CSS pixels) for storage: half a pixel is below what anyone can see on the pad.
STORAGE_TOLERANCE = 0.5
STORAGE_PRESSURE_TOLERANCE = 0.02
SIMPLIFY_WINDOW = 256


class SignatureError(ValueError):
    """A signature that cannot be accepted; the messages are shown to the person who signed."""

    def __init__(self, code: str, message_ja: str, message_en: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_ja = message_ja
        self.message_en = message_en


def _empty() -> SignatureError:
    return SignatureError("empty", "署名をしてください", "Please sign.")


def _too_short() -> SignatureError:
    return SignatureError(
        "too_short",
        "署名が短すぎます。もう一度書いてください",
        "The signature is too short. Please write it again.",
    )


def _malformed(detail: str) -> SignatureError:
    return SignatureError(
        "malformed",
        "署名のデータを読み取れませんでした。「書き直す」を押して、もう一度書いてください",
        f"The signature data could not be read ({detail}). Press “Clear” and sign again.",
    )


def _too_large() -> SignatureError:
    return SignatureError(
        "too_large",
        "署名の線が多すぎます。「書き直す」を押して、もう一度書いてください",
        "The signature has too many lines. Press “Clear” and sign again.",
    )


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


def _number(value: Any, what: str) -> float:
    # bool is an int in Python; true/false are not coordinates.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _malformed(f"{what} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise _malformed(f"{what} is out of range") from None
    if not math.isfinite(number):
        raise _malformed(f"{what} is not finite")
    return number


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def parse_signature(raw_json: str, role: SignatureRole, now: datetime) -> Signature:
    """Check the pad's JSON and make a `Signature` signed at `now`.

    Raises `SignatureError`: "empty" (no strokes, or an empty field), "too_short" (a dot or a
    tiny scribble), "too_large" (over MAX_STROKES strokes or MAX_POINTS points) and "malformed"
    (not JSON, wrong shape, numbers that are not finite, time going backwards in a stroke).
    Coordinates outside the pad and pressures outside 0..1 are clamped, not refused: a pen that
    slides off the edge is normal. Values are rounded as the pad rounds them (0.1 px, whole
    milliseconds, pressure to 4 places, which keeps a 4,096-level pen's steps apart).
    """
    if not raw_json or not raw_json.strip():
        raise _empty()
    if len(raw_json) > MAX_JSON_CHARS:
        raise _too_large()
    try:
        data = json.loads(raw_json, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _malformed("not JSON") from None
    if not isinstance(data, dict):
        raise _malformed("not an object")
    width = _number(data.get("width"), "width")
    height = _number(data.get("height"), "height")
    if not (1.0 <= width <= MAX_PAD_SIDE and 1.0 <= height <= MAX_PAD_SIDE):
        raise _malformed("pad size out of range")
    pointer_type = data.get("pointer_type", "")
    if not isinstance(pointer_type, str):
        raise _malformed("pointer_type is not text")
    if pointer_type not in POINTER_TYPES:
        pointer_type = ""  # a browser we do not know; the vectors still stand
    raw_strokes = data.get("strokes")
    if not isinstance(raw_strokes, list):
        raise _malformed("strokes is not a list")
    if len(raw_strokes) > MAX_STROKES:
        raise _too_large()

    strokes: list[tuple[StrokePoint, ...]] = []
    total_points = 0
    for s_index, raw_stroke in enumerate(raw_strokes):
        if not isinstance(raw_stroke, list):
            raise _malformed(f"stroke {s_index} is not a list")
        total_points += len(raw_stroke)
        if total_points > MAX_POINTS:
            raise _too_large()
        points: list[StrokePoint] = []
        last_t = -math.inf
        for p_index, raw_point in enumerate(raw_stroke):
            where = f"stroke {s_index} point {p_index}"
            if not isinstance(raw_point, list) or len(raw_point) != 4:
                raise _malformed(f"{where} is not [x, y, t, p]")
            x = _number(raw_point[0], f"{where} x")
            y = _number(raw_point[1], f"{where} y")
            t = _number(raw_point[2], f"{where} t")
            p = _number(raw_point[3], f"{where} p")
            if t < 0 or t < last_t:
                raise _malformed(f"{where}: time goes backwards")
            last_t = t
            points.append(
                StrokePoint(
                    x=round(_clamp(x, 0.0, width), 1),
                    y=round(_clamp(y, 0.0, height), 1),
                    t=round(t),
                    p=round(_clamp(p, 0.0, 1.0), 4),
                )
            )
        if points:  # a tap the pad could not record leaves an empty stroke; drop it
            strokes.append(tuple(points))
    if not strokes:
        raise _empty()

    signature = Signature(
        role=role,
        width=round(width, 1),
        height=round(height, 1),
        strokes=tuple(strokes),
        pointer_type=pointer_type,
        signed_at=now,
    )
    xs = [pt.x for s in signature.strokes for pt in s]
    ys = [pt.y for s in signature.strokes for pt in s]
    extent = max(max(xs) - min(xs), max(ys) - min(ys))
    if _ink_length(signature) < MIN_INK_LENGTH or extent < MIN_EXTENT:
        raise _too_short()
    return signature


def _stroke_length(stroke: tuple[StrokePoint, ...]) -> float:
    return sum(math.hypot(b.x - a.x, b.y - a.y) for a, b in zip(stroke, stroke[1:], strict=False))


def _ink_length(sig: Signature) -> float:
    return sum(_stroke_length(s) for s in sig.strokes)


@dataclass(frozen=True, slots=True)
class SignatureStats:
    """Figures about a signature that staff see in the audit detail."""

    strokes: int
    points: int
    ink_length: float  # CSS pixels of line drawn
    duration_ms: int  # time the pen or finger was down, summed over strokes
    pressure_min: float | None  # None when there are no points
    pressure_max: float | None
    pressure_mean: float | None
    pointer_type: str
    width: float
    height: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "strokes": self.strokes,
            "points": self.points,
            "ink_length": self.ink_length,
            "duration_ms": self.duration_ms,
            "pressure_min": self.pressure_min,
            "pressure_max": self.pressure_max,
            "pressure_mean": self.pressure_mean,
            "pointer_type": self.pointer_type,
            "width": self.width,
            "height": self.height,
        }


def signature_stats(sig: Signature) -> SignatureStats:
    pressures = [pt.p for s in sig.strokes for pt in s]
    return SignatureStats(
        strokes=len(sig.strokes),
        points=len(pressures),
        ink_length=round(_ink_length(sig), 1),
        duration_ms=sum(s[-1].t - s[0].t for s in sig.strokes if s),
        pressure_min=min(pressures) if pressures else None,
        pressure_max=max(pressures) if pressures else None,
        pressure_mean=round(sum(pressures) / len(pressures), 4) if pressures else None,
        pointer_type=sig.pointer_type,
        width=sig.width,
        height=sig.height,
    )


def _segment_distance(pt: StrokePoint, a: StrokePoint, b: StrokePoint) -> float:
    dx, dy = b.x - a.x, b.y - a.y
    length_sq = dx * dx + dy * dy
    if length_sq == 0.0:
        return math.hypot(pt.x - a.x, pt.y - a.y)
    u = _clamp(((pt.x - a.x) * dx + (pt.y - a.y) * dy) / length_sq, 0.0, 1.0)
    return math.hypot(pt.x - (a.x + u * dx), pt.y - (a.y + u * dy))


def _simplify_stroke(
    stroke: tuple[StrokePoint, ...], tolerance: float, pressure_tolerance: float
) -> tuple[StrokePoint, ...]:
    # RDP is O(n²) at worst (a zigzag splits one point at a time); in windows of SIMPLIFY_WINDOW
    # points, joins kept, 20,000 hostile points cost a second, not minutes.
    if len(stroke) <= SIMPLIFY_WINDOW:
        return _rdp(stroke, tolerance, pressure_tolerance)
    kept: list[StrokePoint] = []
    step = SIMPLIFY_WINDOW - 1
    for start in range(0, len(stroke) - 1, step):
        window = _rdp(stroke[start : start + SIMPLIFY_WINDOW], tolerance, pressure_tolerance)
        kept.extend(window if not kept else window[1:])
    return tuple(kept)


def _rdp(
    stroke: tuple[StrokePoint, ...], tolerance: float, pressure_tolerance: float
) -> tuple[StrokePoint, ...]:
    if len(stroke) < 3:
        return stroke
    # Distance along the line, to say what pressure a straight run would have at each point.
    along = [0.0]
    for a, b in zip(stroke, stroke[1:], strict=False):
        along.append(along[-1] + math.hypot(b.x - a.x, b.y - a.y))
    keep = [False] * len(stroke)
    keep[0] = keep[-1] = True
    pending = [(0, len(stroke) - 1)]  # a stack, not recursion: 20,000 points would overflow it
    while pending:
        first, last = pending.pop()
        a, b = stroke[first], stroke[last]
        span = along[last] - along[first]
        worst, worst_index = 1.0, -1
        for i in range(first + 1, last):
            pt = stroke[i]
            frac = (along[i] - along[first]) / span if span > 0 else (i - first) / (last - first)
            expected_p = a.p + (b.p - a.p) * frac
            # Each error in units of its own tolerance: beyond 1 the point matters.
            error = max(
                _segment_distance(pt, a, b) / tolerance,
                abs(pt.p - expected_p) / pressure_tolerance,
            )
            if error > worst:
                worst, worst_index = error, i
        if worst_index >= 0:
            keep[worst_index] = True
            pending.append((first, worst_index))
            pending.append((worst_index, last))
    return tuple(pt for pt, kept in zip(stroke, keep, strict=True) if kept)


def simplify(
    sig: Signature, tolerance: float, pressure_tolerance: float = STORAGE_PRESSURE_TOLERANCE
) -> Signature:
    """Ramer–Douglas–Peucker on every stroke, keeping pressure.

    A point goes only when the line without it stays within `tolerance` CSS pixels *and* its
    pressure is within `pressure_tolerance` of what the neighbours kept would give it (pressure
    interpolated along the line), so the thick and thin parts of a pen signature survive. Kept
    points keep their own x, y, t and p; first and last points of a stroke are always kept.
    A tolerance (either one) of 0 or less returns the signature unchanged.
    """
    if tolerance <= 0 or pressure_tolerance <= 0:
        return sig
    return replace(
        sig, strokes=tuple(_simplify_stroke(s, tolerance, pressure_tolerance) for s in sig.strokes)
    )
