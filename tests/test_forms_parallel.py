"""A form set rendered on worker processes: same pages, same text, in the same order as one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.printing import forms_parallel
from app.printing.forms import render_forms
from app.printing.forms_parallel import form_cost, render_forms_parallel, split
from tests.test_forms_pdf import BASE, compact, family_case, pdf_text


def test_split_keeps_order_and_balances() -> None:
    assert split([1, 1, 1, 1, 1, 1, 1.5], 2) == [(0, 4), (4, 7)]
    assert split([3, 1, 1, 1], 2) == [(0, 1), (1, 4)]
    assert split([1, 1], 4) == [(0, 1), (1, 2)]
    assert split([5], 2) == [(0, 1)]
    runs = split([1.0] * 9, 3)
    assert runs == [(0, 3), (3, 6), (6, 9)]


def test_cost_follows_pages() -> None:
    case = family_case()
    assert form_cost(case, "guide_sheet") > form_cost(case, "kosodate_iryo")
    assert form_cost(case, "idou_todoke") == 1.0


def test_parallel_set_equals_the_serial_one(tmp_path: Path) -> None:
    case = family_case()
    serial = render_forms(case, base_url=BASE)
    parallel = render_forms_parallel(case, base_url=BASE, processes=2)
    assert parallel.form_ids == serial.form_ids
    assert parallel.pages == serial.pages
    assert dict(parallel.form_pages) == dict(serial.form_pages)
    assert parallel.skipped == serial.skipped
    assert compact(pdf_text(parallel.pdf, tmp_path)) == compact(pdf_text(serial.pdf, tmp_path))
    chosen = render_forms_parallel(
        case, ["guide_sheet", "idou_todoke", "guide_sheet"], base_url=BASE, processes=2
    )
    assert chosen.form_ids == ("guide_sheet", "idou_todoke")
    with pytest.raises(ValueError):
        render_forms_parallel(case, ["idou_todoke", "no_such_form"], base_url=BASE, processes=2)


def test_a_broken_pool_falls_back_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures.process import BrokenProcessPool

    def broken(size: int) -> object:
        raise BrokenProcessPool("a worker died")

    monkeypatch.setattr(forms_parallel, "_get_pool", broken)
    rendered = render_forms_parallel(family_case(), base_url=BASE, processes=2)
    assert rendered.pages >= 8 and rendered.pdf.startswith(b"%PDF")
