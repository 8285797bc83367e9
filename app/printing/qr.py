"""QR codes (segno) with a faster choice of the data mask.

ISO/IEC 18004 has the encoder apply each of the eight data masks and keep the one with the lowest
penalty (runs, blocks, finder-like patterns, dark share). segno does this module by module in
Python: ~4–8 ms of the ~6 ms a certificate page otherwise costs. `install()` replaces segno's
`find_and_apply_best_mask` for (non-micro) QR codes with one that works on whole rows — a mask is
applied as one integer XOR a row, runs and finder-like patterns are found by bytes searches, 2×2
blocks by XORs of neighbouring rows — and makes exactly the same choice and the same symbol
(tests/test_qr.py compares it with segno's own on many inputs). Anything else goes to segno's.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from typing import Any

import segno
import segno.encoder

__all__ = ["install", "qr_matrix"]

_encoder: Any = segno.encoder  # internal API (pinned in uv.lock; tests/test_qr.py checks it)
_N3 = bytes((1, 0, 1, 1, 1, 0, 1))
_SAME_RUNS = re.compile(rb"\x00\x00\x00\x00+")  # 5+ equal modules, as XORs of neighbours
_SEPARATOR = b"\xff"  # between lines: no module has this value
_SEGNO_CHOICE: Any = _encoder.find_and_apply_best_mask
_install_lock = threading.Lock()


def find_and_apply_best_mask(
    matrix: Any, width: int, height: int, proposed_mask: int | None = None
) -> tuple[int, Any]:
    """segno's function of that name (same arguments and result), row-wise for QR codes."""
    if proposed_mask is not None or width != height or width < 21:
        choice: tuple[int, Any] = _SEGNO_CHOICE(matrix, width, height, proposed_mask)
        return choice
    return _best_mask(matrix, width)


def install() -> None:
    """Use the row-wise mask choice in segno (once per process)."""
    with _install_lock:
        _encoder.find_and_apply_best_mask = find_and_apply_best_mask


def qr_matrix(text: str) -> tuple[bytearray, ...]:
    """The modules of `text` as a QR code (error correction M, no quiet zone): 1 is dark."""
    install()
    return tuple(segno.make(text, error="m", micro=False).matrix)


@functools.cache
def _mask_rows(size: int) -> tuple[tuple[int, ...], ...]:
    """Per mask pattern, per row: the mask's bits over the encoding region, one byte a module."""
    function = _encoder.make_matrix(size, size)
    _encoder.add_finder_patterns(function, size, size)
    _encoder.add_alignment_patterns(function, size, size)
    function[-8][8] = 0x1
    patterns = _encoder.get_data_mask_functions(False)
    return tuple(
        tuple(
            int.from_bytes(
                bytes(pattern(i, j) if function[i][j] > 0x1 else 0 for j in range(size)),
                "big",
            )
            for i in range(size)
        )
        for pattern in patterns
    )


def _best_mask(matrix: Sequence[bytearray], size: int) -> tuple[int, tuple[bytearray, ...]]:
    base = [int.from_bytes(row, "big") for row in matrix]
    best_score = -1
    best_pattern = 0
    best_rows: list[bytes] = []
    for pattern, mask in enumerate(_mask_rows(size)):
        rows = [(value ^ bits).to_bytes(size, "big") for value, bits in zip(base, mask, strict=True)]
        score = _penalty(rows, size)
        if best_score < 0 or score < best_score:
            best_score, best_pattern, best_rows = score, pattern, rows
    return best_pattern, tuple(bytearray(row) for row in best_rows)


def _penalty(rows: list[bytes], size: int) -> int:
    """segno's `evaluate_mask` (N1 + N2 + N3 + N4), row-wise.

    Rows and columns are joined into one buffer, each line followed by a byte that no module has
    (0xFF), so one regular-expression pass finds the runs (N1) and one search the finder-like
    patterns (N3) of all lines; the separator ends runs and patterns just as a line's end does."""
    columns = [bytes(column) for column in zip(*rows, strict=True)]
    joined = _SEPARATOR.join((*rows, *columns)) + _SEPARATOR
    # N1: a run of L ≥ 5 equal modules scores L - 2. Each byte XOR the one before it is 0 where a
    # module equals its predecessor, so such a run is L - 1 ≥ 4 zero bytes there, and the score
    # is the zeros less one (the separators, never equal to a neighbour, end runs). One literal
    # search instead of trying four alternatives at every position (~8× faster).
    value = int.from_bytes(joined, "big")
    same = (value ^ (value >> 8) | 0xFF << (8 * (len(joined) - 1))).to_bytes(len(joined), "big")
    rest, runs = _SAME_RUNS.subn(b"", same)
    n1 = len(same) - len(rest) - runs
    n3 = _finder_like(joined, size)
    n2 = 0
    mask = (1 << (8 * (size - 1))) - 1  # every byte but the first (j ≥ 1)
    previous = int.from_bytes(rows[0], "big")
    for row in rows[1:]:
        current = int.from_bytes(row, "big")
        differs = (previous ^ current) | (current ^ (current >> 8)) | (previous ^ (previous >> 8))
        n2 += 3 * (differs & mask).to_bytes(size, "big")[1:].count(0)
        previous = current
    dark = sum(joined[: len(rows) * (size + 1)]) - len(rows) * 0xFF
    n4 = 10 * int(abs(float(dark) / (size**2) * 100 - 50) / 5)
    return n1 + n2 + n3 + n4


def _finder_like(lines: bytes, size: int) -> int:
    """1:1:3:1:1 patterns with four light modules before or after (or at an edge), as segno
    counts them (40 each), in `lines`: lines of `size` modules, each followed by a separator."""
    count = 0
    stride = size + 1
    index = lines.find(_N3)
    while index != -1:
        start = index - index % stride  # where this line starts
        position = index - start
        offset = index + 7
        if (
            position in (0, size - 7)
            or not any(lines[start + max(position - 4, 0) : index])
            or not any(lines[offset : start + min(position + 11, size)])
        ):
            count += 40
        else:
            offset = index + 4
        index = lines.find(_N3, offset)
    return count
