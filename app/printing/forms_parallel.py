"""A case's form set rendered on several CPU cores at once, then joined into one PDF.

WeasyPrint spends ~55 ms of CPU a page and holds the GIL, so the 8 pages of a family moving in
take ~440 ms on one core. The set is cut into contiguous runs of forms of about equal cost (the
page order never changes), each run is rendered by a warm worker process, and the parts are
joined with pypdf (~20 ms). Any trouble with the pool (a worker killed, no fork allowed) falls
back to rendering in this process: a slower print, never a lost one.

The calling thread renders the first run itself; the pool (processes − 1 workers) is made on
first use (forkserver: no threads or open connections of the web process are copied) and each
worker loads the fonts once.
"""

from __future__ import annotations

import atexit
import io
import logging
import math
import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from app.domain.cases import CaseData
from app.printing.forms import (
    GUIDE_SHEET,
    SUMMARY,
    RenderedForms,
    chosen_form_ids,
    default_form_ids,
    render_forms,
    rows_per_sheet,
)

log = logging.getLogger("madoguchi.forms")

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def default_processes(setting: int = 0) -> int:
    """Worker processes for form sets: the setting (MADOGUCHI_FORM_PROCESSES), 0 = the CPU count
    (at most 4)."""
    return setting if setting > 0 else min(os.cpu_count() or 1, 4)


def _warm() -> None:
    """Load fonts, stylesheets and templates once per worker (the first render's cost)."""
    try:
        from datetime import date

        from app.domain.cases import CaseMode, Person

        applicant = Person(key="warm", family_name="見本", given_name="太郎", birth_date=date(1980, 4, 1))
        sample = CaseData(
            token="warm-up",
            number="L-0000",
            event_id="tennyu",
            event_name="転入",
            event_date=date(2026, 4, 1),
            filed_on=date(2026, 4, 1),
            mode=CaseMode.INTERVIEW,
            applicant=applicant,
            members=(applicant,),
        )
        render_forms(sample, [SUMMARY, "idou_todoke"])
    except Exception:  # a worker that cannot warm up still renders (slower on its first job)
        log.exception("form worker warm-up failed")


def _get_pool(size: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            context = multiprocessing.get_context("forkserver")
            _pool = ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_warm)
            _pool_size = size
        return _pool


def shutdown() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool = None


atexit.register(shutdown)


def _render_part(
    case: CaseData,
    form_ids: list[str],
    base_url: str,
    questions: dict[str, str],
    choices: dict[str, dict[str, str]],
) -> RenderedForms:
    """One run of forms in a worker; the result crosses back by pickle (plain dicts only)."""
    from dataclasses import replace

    rendered = render_forms(case, form_ids, base_url=base_url, questions=questions, choices=choices)
    return replace(rendered, form_pages=dict(rendered.form_pages))


def form_cost(case: CaseData, form_id: str) -> float:
    """Rough pages of one form for this case (what its render time follows)."""
    # Measured: the 2-page 手続き案内票 ≈ 1.2 forms (its second page is short), the 申請内容票 ≈ 1.
    if form_id == GUIDE_SHEET:
        return 1.0 + 0.02 * len(case.procedures)
    if form_id == SUMMARY:
        return 1.0 + 0.01 * len(case.answers)
    rows = rows_per_sheet(form_id)
    if rows:
        return float(max(1, math.ceil(len(case.subjects()) / rows)))
    return 1.0


def split(costs: Sequence[float], parts: int) -> list[tuple[int, int]]:
    """Cut 0..len(costs) into at most `parts` contiguous runs minimising the largest run's cost."""
    n = len(costs)
    parts = max(1, min(parts, n))
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    best: list[tuple[int, int]] = [(0, n)]
    best_cost = prefix[n]

    def search(start: int, left: int, acc: list[tuple[int, int]], worst: float) -> None:
        nonlocal best, best_cost
        if worst >= best_cost:
            return
        if left == 1:
            worst = max(worst, prefix[n] - prefix[start])
            if worst < best_cost:
                best, best_cost = [*acc, (start, n)], worst
            return
        for end in range(start + 1, n - left + 2):
            search(end, left - 1, [*acc, (start, end)], max(worst, prefix[end] - prefix[start]))

    search(0, parts, [], 0.0)
    return best


def _join(parts: Sequence[RenderedForms], skipped: tuple[str, ...]) -> RenderedForms:
    """The parts' pages in order, in one PDF (the first part's document info kept)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(parts[0].pdf))
    form_pages: dict[str, tuple[int, int]] = dict(parts[0].form_pages)
    offset = parts[0].pages
    for part in parts[1:]:
        writer.append(PdfReader(io.BytesIO(part.pdf)))
        for form_id, (first, count) in part.form_pages.items():
            form_pages[form_id] = (first + offset, count)
        offset += part.pages
    out = io.BytesIO()
    writer.write(out)
    return RenderedForms(
        pdf=out.getvalue(),
        pages=offset,
        form_ids=tuple(f for part in parts for f in part.form_ids),
        form_pages=form_pages,
        skipped=skipped,
    )


def render_forms_parallel(
    case: CaseData,
    form_ids: Sequence[str] | None = None,
    *,
    base_url: str = "",
    questions: Mapping[str, str] | None = None,
    choices: Mapping[str, Mapping[str, str]] | None = None,
    processes: int | None = None,
) -> RenderedForms:
    """`render_forms` with the set spread over `processes` workers (default_processes())."""
    size = default_processes() if processes is None else processes
    if form_ids is None:
        chosen, skipped = default_form_ids(case)
    else:
        chosen, skipped = chosen_form_ids(form_ids), ()
    if size < 2 or len(chosen) < 2:
        return render_forms(case, form_ids, base_url=base_url, questions=questions, choices=choices)
    runs = split([form_cost(case, f) for f in chosen], size)
    if len(runs) < 2:
        return render_forms(case, form_ids, base_url=base_url, questions=questions, choices=choices)
    plain_questions = dict(questions or {})
    plain_choices = {k: dict(v) for k, v in (choices or {}).items()}
    try:
        # The calling thread renders the first run itself (it would only wait otherwise, and its
        # run needs no pickling); the others go to the workers.
        pool = _get_pool(size - 1)
        futures = [
            pool.submit(_render_part, case, list(chosen[start:end]), base_url, plain_questions, plain_choices)
            for start, end in runs[1:]
        ]
        first_start, first_end = runs[0]
        first = _render_part(
            case, list(chosen[first_start:first_end]), base_url, plain_questions, plain_choices
        )
        parts = [first, *(f.result() for f in futures)]
    except (BrokenProcessPool, OSError, RuntimeError) as error:
        log.warning("form workers unavailable (%s); rendering in this process", type(error).__name__)
        shutdown()
        return render_forms(case, form_ids, base_url=base_url, questions=questions, choices=choices)
    return _join(parts, skipped)
