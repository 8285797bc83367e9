"""app.printing.qr: the row-wise mask choice makes exactly the symbols segno's own makes."""

from __future__ import annotations

import random
import string

import pytest
import segno
import segno.encoder

from app.printing import qr


def _symbols(texts: list[str], error: str) -> list[tuple[int, list[bytes]]]:
    result = []
    for text in texts:
        code = segno.make(text, error=error, micro=False)
        result.append((code.mask, [bytes(row) for row in code.matrix]))
    return result


@pytest.mark.parametrize("error", ["l", "m", "h"])
def test_same_mask_and_modules_as_segno(monkeypatch: pytest.MonkeyPatch, error: str) -> None:
    rng = random.Random(error)
    alphabet = string.ascii_letters + string.digits + "/:?=_-.日本"
    texts = [
        "https://aobadai.example.jp/verify/20260421_993417_K01_P01_001_1-1?h=8dbb3b37ffe08afb",
        *("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300))) for _ in range(120)),
    ]
    monkeypatch.setattr(segno.encoder, "find_and_apply_best_mask", qr._SEGNO_CHOICE)
    expected = _symbols(texts, error)
    monkeypatch.setattr(segno.encoder, "find_and_apply_best_mask", qr.find_and_apply_best_mask)
    assert _symbols(texts, error) == expected
    assert len({mask for mask, _ in expected}) >= 6  # the inputs exercise most of the masks


def test_qr_matrix_reads_back() -> None:
    import zxingcpp
    from PIL import Image

    url = "https://aobadai.example.jp/verify/20260421_993417_K01_P01_001_1-1?h=8dbb3b37ffe08afb"
    matrix = qr.qr_matrix(url)
    size = len(matrix)
    image = Image.new("L", (size + 8, size + 8), 255)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                image.putpixel((x + 4, y + 4), 0)
    image = image.resize(((size + 8) * 6, (size + 8) * 6), Image.Resampling.NEAREST)
    assert [result.text for result in zxingcpp.read_barcodes(image)] == [url]
