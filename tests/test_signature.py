"""Handwritten signatures: what parse_signature accepts and refuses, stats and simplification."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from app.domain.cases import Signature, SignatureRole, StrokePoint
from app.domain.signature import (
    MAX_POINTS,
    MAX_STROKES,
    SignatureError,
    parse_signature,
    signature_stats,
    simplify,
)

NOW = datetime(2026, 4, 1, 10, 30, tzinfo=UTC)


def pad_json(strokes: Any, width: Any = 600, height: Any = 200, pointer_type: Any = "pen") -> str:
    return json.dumps({"width": width, "height": height, "pointer_type": pointer_type, "strokes": strokes})


# A plausible signature: a wavy line and a short tick, drawn with a pen.
WAVE = [[10 + i * 4.0, 100 + 30 * math.sin(i / 5), i * 8, 0.3 + 0.004 * i] for i in range(60)]
TICK = [[300, 80, 0, 0.5], [310, 95, 12, 0.6], [330, 60, 30, 0.55]]


def parse(raw: str, role: SignatureRole = SignatureRole.RESIDENT) -> Signature:
    return parse_signature(raw, role, NOW)


def error_of(raw: str) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        parse(raw)
    return caught.value


def test_parses_a_pen_signature_keeping_pressure() -> None:
    sig = parse(pad_json([WAVE, TICK]))
    assert sig.role is SignatureRole.RESIDENT
    assert sig.signed_at == NOW
    assert (sig.width, sig.height, sig.pointer_type) == (600.0, 200.0, "pen")
    assert [len(s) for s in sig.strokes] == [60, 3]
    assert sig.strokes[1] == (
        StrokePoint(300.0, 80.0, 0, 0.5),
        StrokePoint(310.0, 95.0, 12, 0.6),
        StrokePoint(330.0, 60.0, 30, 0.55),
    )
    # Pressure from a 4,096-level pen keeps its steps apart (1/4096 ≈ 0.000244).
    fine = [[10, 10, 0, 1000 / 4095], [60, 10, 5, 1001 / 4095], [120, 40, 9, 1002 / 4095]]
    steps = [pt.p for pt in parse(pad_json([fine])).strokes[0]]
    assert len(set(steps)) == 3
    assert steps == [0.2442, 0.2444, 0.2447]


def test_round_trips_through_to_dict() -> None:
    sig = parse(pad_json([WAVE, TICK]))
    assert Signature.from_dict(sig.to_dict()) == sig


def test_rounds_coordinates_and_time() -> None:
    sig = parse(pad_json([[[10.04, 20.06, 0.4, 0.123456], [90.56, 20.0, 16.6, 0.5]]]))
    first, second = sig.strokes[0]
    assert (first.x, first.y, first.t, first.p) == (10.0, 20.1, 0, 0.1235)
    assert (second.x, second.t) == (90.6, 17)
    assert isinstance(second.t, int)


@pytest.mark.parametrize("raw", ["", "   ", pad_json([]), pad_json([[], []])])
def test_empty_asks_for_a_signature(raw: str) -> None:
    error = error_of(raw)
    assert error.code == "empty"
    assert error.message_ja == "署名をしてください"
    assert error.message_en


@pytest.mark.parametrize(
    "strokes",
    [
        [[[100, 100, 0, 0.5]]],  # a single dot
        [[[100, 100, 0, 0.5], [100, 100, 30, 0.6]]],  # a dot held still
        [[[100, 100, 0, 0.5], [112, 104, 10, 0.5]]],  # a tiny slip
        [[[100, 100, 0, 0.5], [102, 101, 5, 0.5]]] * 20,  # many taps in one place
    ],
)
def test_too_short(strokes: Any) -> None:
    error = error_of(pad_json(strokes))
    assert error.code == "too_short"
    assert error.message_ja == "署名が短すぎます。もう一度書いてください"


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        '{"width": 600, "height": 200}',  # no strokes
        pad_json("strokes"),
        pad_json([[[1, 2, 3]]]),  # three numbers, not four
        pad_json([[[1, 2, 3, 0.5, 9]]]),
        pad_json([[{"x": 1, "y": 2, "t": 0, "p": 0.5}]]),
        pad_json([[[1, "2", 0, 0.5]]]),
        pad_json([[[1, True, 0, 0.5]]]),
        pad_json([[[1, None, 0, 0.5]]]),
        pad_json([[[1, 2, 0, 0.5], [50, 2, 10, 0.5]]], width="600"),
        pad_json(WAVE),  # points straight in strokes, one level missing
        pad_json([WAVE], width=0),
        pad_json([WAVE], height=-5),
        pad_json([WAVE], width=50_000),
        pad_json([WAVE], pointer_type=7),
        '{"width": 600, "height": 200, "strokes": [[[1, 2, 0, NaN], [90, 2, 10, 0.5]]]}',
        '{"width": 600, "height": 200, "strokes": [[[1, 2, 0, 0.5], [Infinity, 2, 10, 0.5]]]}',
        '{"width": 600, "height": 200, "strokes": [[[1, 2, 0, 0.5], [1e999, 2, 10, 0.5]]]}',
        '{"width": 600, "height": 200, "strokes": [[[1, 2, 0, 0.5], [' + "9" * 400 + ", 2, 10, 0.5]]]}",
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_malformed(raw: str) -> None:
    error = error_of(raw)
    assert error.code in {"malformed", "too_large"}, error.code
    assert "署名" in error.message_ja


def test_time_must_not_go_backwards_within_a_stroke() -> None:
    error = error_of(pad_json([[[10, 10, 0, 0.5], [60, 10, 20, 0.5], [120, 10, 19, 0.5]]]))
    assert error.code == "malformed"
    assert "backwards" in error.message_en
    # Each stroke starts again at 0: that is fine.
    parse(pad_json([[[10, 10, 0, 0.5], [60, 10, 20, 0.5]], [[10, 50, 0, 0.5], [60, 50, 20, 0.5]]]))
    # Equal times (coalesced events) are fine too.
    parse(pad_json([[[10, 10, 0, 0.5], [60, 10, 20, 0.5], [90, 10, 20, 0.5]]]))
    assert error_of(pad_json([[[10, 10, -1, 0.5], [60, 10, 20, 0.5]]])).code == "malformed"


def test_clamps_to_the_pad_and_pressure_range() -> None:
    sig = parse(pad_json([[[-30, 50, 0, -0.2], [300, 250, 10, 1.7], [700, -4, 20, 0.5]]]))
    xs = [(pt.x, pt.y, pt.p) for pt in sig.strokes[0]]
    assert xs == [(0.0, 50.0, 0.0), (300.0, 200.0, 1.0), (600.0, 0.0, 0.5)]


def test_unknown_pointer_type_is_dropped_not_refused() -> None:
    assert parse(pad_json([WAVE], pointer_type="stylus")).pointer_type == ""
    assert parse(pad_json([WAVE], pointer_type="touch")).pointer_type == "touch"


def test_limits_against_abuse() -> None:
    stroke = [[10, 10, 0, 0.5], [60, 10, 5, 0.5]]
    parse(pad_json([stroke] * MAX_STROKES))
    assert error_of(pad_json([stroke] * (MAX_STROKES + 1))).code == "too_large"
    per_stroke = MAX_POINTS // 100
    many = [[[10 + (i % 500), 10 + i // 500, i, 0.5] for i in range(per_stroke)]] * 100
    assert sum(len(s) for s in parse(pad_json(many)).strokes) == MAX_POINTS
    many[-1] = [*many[-1], [10, 10, per_stroke + 1, 0.5]]
    error = error_of(pad_json(many))
    assert error.code == "too_large"
    assert error.message_ja.startswith("署名の線が多すぎます")
    assert error_of(" " * 2_000_000 + pad_json([WAVE])).code == "too_large"


def test_empty_strokes_are_dropped() -> None:
    sig = parse(pad_json([[], WAVE, []]))
    assert len(sig.strokes) == 1


def test_stats() -> None:
    strokes = [
        [[0, 0, 0, 0.2], [30, 40, 100, 0.6]],  # length 50, 100 ms
        [[100, 10, 0, 0.4], [100, 30, 40, 0.8], [120, 30, 90, 1.0]],  # length 40, 90 ms
    ]
    stats = signature_stats(parse(pad_json(strokes, pointer_type="touch")))
    assert (stats.strokes, stats.points) == (2, 5)
    assert stats.ink_length == 90.0
    assert stats.duration_ms == 190
    assert (stats.pressure_min, stats.pressure_max, stats.pressure_mean) == (0.2, 1.0, 0.6)
    assert stats.pointer_type == "touch"
    assert stats.to_dict()["ink_length"] == 90.0


def test_stats_of_nothing() -> None:
    empty = Signature(role=SignatureRole.CLERK, width=600, height=200, strokes=())
    stats = signature_stats(empty)
    assert (stats.strokes, stats.points, stats.ink_length, stats.duration_ms) == (0, 0, 0.0, 0)
    assert stats.pressure_mean is None


def _straight(n: int, pressure: Any = lambda i: 0.5) -> list[list[float]]:
    return [[10 + i * 2.0, 50.0, i * 4, pressure(i)] for i in range(n)]


def test_simplify_straight_line_keeps_ends() -> None:
    sig = parse(pad_json([_straight(100)]))
    simple = simplify(sig, 0.5)
    assert [(pt.x, pt.t) for pt in simple.strokes[0]] == [(10.0, 0), (208.0, 396)]
    assert simple.role == sig.role and simple.signed_at == sig.signed_at


def test_simplify_long_stroke_in_windows() -> None:
    # Long strokes are simplified in windows of 256 points: a join costs one point, no more.
    line = [[1 + i * 0.1, 50.0, i, 0.5] for i in range(5000)]
    simple = simplify(parse(pad_json([line], width=1000)), 0.5).strokes[0]
    assert 2 <= len(simple) <= 5000 // 255 + 2
    assert (simple[0].t, simple[-1].t) == (0, 4999)


def test_simplify_keeps_corners() -> None:
    corner = [[10 + i * 2.0, 50, i, 0.5] for i in range(50)] + [
        [108, 50 + i * 2.0, 50 + i, 0.5] for i in range(1, 50)
    ]
    simple = simplify(parse(pad_json([corner])), 0.5).strokes[0]
    assert [(pt.x, pt.y) for pt in simple] == [(10.0, 50.0), (108.0, 50.0), (108.0, 148.0)]


def test_simplify_keeps_pressure_changes() -> None:
    # Straight in x/y, but the pen presses hard in the middle: that peak must stay.
    bump = _straight(101, lambda i: 0.3 + 0.5 * math.exp(-(((i - 50) / 8) ** 2)))
    sig = parse(pad_json([bump]))
    simple = simplify(sig, 0.5).strokes[0]
    assert 3 < len(simple) < 101
    assert max(pt.p for pt in simple) == max(pt.p for pt in sig.strokes[0])
    # Every dropped point's pressure is within tolerance of the line through the kept ones.
    kept_t = [pt.t for pt in simple]
    for pt in sig.strokes[0]:
        right = next(k for k in simple if k.t >= pt.t)
        left = next(k for k in reversed(simple) if k.t <= pt.t)
        if left.t == right.t:
            continue
        expected = left.p + (right.p - left.p) * (pt.t - left.t) / (right.t - left.t)
        assert abs(pt.p - expected) <= 0.02 + 1e-9, (pt, kept_t)
    # Ignoring pressure (a huge pressure tolerance), the same line is two points.
    assert len(simplify(sig, 0.5, pressure_tolerance=10).strokes[0]) == 2


def test_simplify_bounds_storage_of_a_real_looking_signature() -> None:
    sig = parse(pad_json([WAVE, TICK]))
    simple = simplify(sig, 0.5)
    for before, after in zip(sig.strokes, simple.strokes, strict=True):
        assert len(after) <= len(before)
        assert after[0] == before[0] and after[-1] == before[-1]
        assert set(after) <= set(before)
    # Every dropped point lies within the tolerance of the simplified line.
    for before, after in zip(sig.strokes, simple.strokes, strict=True):
        for pt in before:
            nearest = min(_distance_to_segment(pt, a, b) for a, b in zip(after, after[1:], strict=False))
            assert nearest <= 0.5 + 1e-9


def test_simplify_many_points_does_not_recurse() -> None:
    zigzag = [[10 + (i % 400), 10 + (i // 400) * 3 + (i % 2) * 2, i, 0.5] for i in range(MAX_POINTS)]
    sig = parse(pad_json([zigzag], width=1000, height=1000))
    assert len(simplify(sig, 0.5).strokes[0]) <= MAX_POINTS


def test_simplify_zero_tolerance_is_identity() -> None:
    sig = parse(pad_json([WAVE]))
    assert simplify(sig, 0) is sig


def _distance_to_segment(pt: StrokePoint, a: StrokePoint, b: StrokePoint) -> float:
    dx, dy = b.x - a.x, b.y - a.y
    if dx == dy == 0:
        return math.hypot(pt.x - a.x, pt.y - a.y)
    u = max(0.0, min(1.0, ((pt.x - a.x) * dx + (pt.y - a.y) * dy) / (dx * dx + dy * dy)))
    return math.hypot(pt.x - a.x - u * dx, pt.y - a.y - u * dy)
