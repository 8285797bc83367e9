"""Life-event rules engine: one evaluation for a 6-person household (target ≤ 2 ms).

    uv run python bench/bench_lifeevent_rules.py                  # 2000 evaluations per row
    uv run python bench/bench_lifeevent_rules.py --count 5000

The household: a grandmother of 76 (後期高齢, 要介護認定), a grandfather of 70 (国保, 障害者手帳),
two parents in an employer plan (第2号 / 第3号, My Number Cards, a registered seal), children of
10 and 3. Rows:

- ``all procedures``: every procedure of the seed catalogue (all events at once, every yes/no
  answer "yes"), person-level rules for each of the six members — the figure the target is for;
- ``all procedures, cold``: the same with the explanation memo cleared before every evaluation
  (the first time a household with these values is seen);
- one row per life event with realistic answers, including input validation.

Each evaluation is timed by wall clock and by this thread's CPU time. On a busy machine the wall
clock includes time the process was not running; the CPU time is the engine's own cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.domain.lifeevents.engine import Result, evaluate  # noqa: E402
from app.domain.lifeevents.loader import load_rules  # noqa: E402
from app.domain.lifeevents.model import Insurance, Member, PensionType, QuestionKind  # noqa: E402

TARGET_MS = 2.0
TODAY = date(2025, 6, 10)

HOUSEHOLD = [
    Member("gm", "山田 ハル", date(1949, 3, 3), "父の母", insurance=Insurance.KOKI, has_care_certification=True, has_my_number_card=True, has_seal_registration=True),
    Member("gf", "山田 茂", date(1955, 1, 20), "父の父", insurance=Insurance.KOKUHO, pension=PensionType.NONE, has_disability_certificate=True),
    Member("f", "山田 太郎", date(1980, 5, 3), "世帯主", insurance=Insurance.EMPLOYER, pension=PensionType.DAI2, has_my_number_card=True, has_sign_certificate=True, has_seal_registration=True),
    Member("m", "山田 花子", date(1982, 8, 20), "妻", insurance=Insurance.EMPLOYER, pension=PensionType.DAI3, has_my_number_card=True),
    Member("k10", "山田 一郎", date(2014, 9, 1), "子", insurance=Insurance.EMPLOYER),
    Member("k3", "山田 桜", date(2021, 12, 5), "子", insurance=Insurance.EMPLOYER),
]  # fmt: skip

EVENTS: dict[str, tuple[dict[str, Any], date, list[str] | None, str]] = {
    "tennyu": (
        {"moved_from": "other_city", "tenshutsu_method": "card", "has_dog": True, "dog_count": 1, "has_moped": False,
         "uses_childcare": True, "single_parent": False, "pregnant": False},
        date(2025, 6, 5), None, "f",
    ),
    "tenshutsu": (
        {"destination": "domestic", "receives_child_allowance": True, "receives_child_support": False,
         "uses_childcare": True, "has_dog": False, "has_moped": False},
        date(2025, 6, 20), None, "f",
    ),
    "tenkyo": ({"school_district_change": "changes", "receives_child_allowance": True, "has_dog": True}, date(2025, 6, 8), None, "f"),
    "setai_henko": ({"change_kind": "split", "receives_child_allowance": True}, date(2025, 6, 8), ["gm", "gf"], "f"),
    "shibou": (
        {"had_pension": True, "funeral_held": True, "funeral_date": date(2025, 6, 6), "deceased_employee": False,
         "receives_child_allowance_deceased": False, "owned_real_estate": True, "had_dog": False},
        date(2025, 6, 3), ["gm"], "f",
    ),
    "konin": ({"surname_change": "none", "living": "same_household", "joins_employer_insurance": False,
               "receives_child_support": False, "receives_child_allowance": True}, date(2025, 6, 10), ["f"], "f"),
}  # fmt: skip


def _all_yes() -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for event in RULES.catalog.events:
        for q in event.questions:
            if q.kind is QuestionKind.CHOICE:
                answers.setdefault(q.id, q.options[0].value)
            elif q.kind is QuestionKind.YES_NO:
                answers.setdefault(q.id, True)
            elif q.kind is QuestionKind.COUNT:
                answers.setdefault(q.id, q.min or 1)
            else:
                answers.setdefault(q.id, TODAY)
    return answers


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _measure(
    fn: Callable[[], Result], count: int, before: Callable[[], None] | None = None
) -> tuple[list[float], list[float], Result]:
    result = fn()  # warm up
    for _ in range(50):
        fn()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(count):
        if before is not None:
            before()
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        result = fn()
        c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
        wall.append((w1 - w0) / 1e6)
        cpu.append((c1 - c0) / 1e6)
    return wall, cpu, result


def _row(name: str, wall: list[float], cpu: list[float], result: Result) -> None:
    found = list(result.all())
    print(
        f"{name:<30} {statistics.median(cpu):7.3f} {_percentile(cpu, 0.95):7.3f}   "
        f"{statistics.median(wall):7.3f} {_percentile(wall, 0.95):7.3f} {max(wall):8.2f}   "
        f"{len(found):4d} ({sum(1 for a in found if a.procedure.level.value == 'household')} household)"
    )


def _clear_memos() -> None:
    for compiled in RULES.everything.procedures:
        for _, condition in compiled.conditions:
            condition.memo.clear()
        if compiled.members is not None:
            compiled.members.memo.clear()


t0 = time.perf_counter()
RULES = load_rules()
LOAD_MS = (time.perf_counter() - t0) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000, help="evaluations per row")
    args = parser.parse_args()

    c = RULES.catalog
    print(
        f"catalogue: {len(c.events)} events, {len(c.services)} services, {len(c.procedures)} procedures, "
        f"{len(c.forms)} forms — loaded, checked and compiled in {LOAD_MS:.0f} ms"
    )
    print(f"household: {len(HOUSEHOLD)} members; {args.count} evaluations per row; times in ms\n")
    print(f"{'':<30} {'cpu':>7} {'cpu':>7}   {'wall':>7} {'wall':>7} {'wall':>8}   applicable")
    print(f"{'':<30} {'median':>7} {'p95':>7}   {'median':>7} {'p95':>7} {'max':>8}")

    answers = _all_yes()

    def everything() -> Result:
        return evaluate(RULES.everything, answers, HOUSEHOLD, "f", TODAY, TODAY, check=False)

    wall, cpu, result = _measure(everything, args.count)
    _row("all procedures", wall, cpu, result)
    headline = (
        statistics.median(cpu),
        _percentile(cpu, 0.95),
        statistics.median(wall),
        _percentile(wall, 0.95),
    )
    wall, cpu, result = _measure(everything, max(200, args.count // 4), before=_clear_memos)
    _row("all procedures, cold", wall, cpu, result)

    for event_id, (event_answers, event_date, subjects, applicant) in EVENTS.items():
        compiled = RULES.event(event_id)

        def one(
            compiled: Any = compiled,
            a: Any = event_answers,
            d: date = event_date,
            s: Any = subjects,
            ap: str = applicant,
        ) -> Result:
            return evaluate(compiled, a, HOUSEHOLD, ap, d, TODAY, subject_ids=s)

        wall, cpu, result = _measure(one, args.count)
        assert result.ok, [p.message.ja for p in result.problems]
        _row(f"{event_id} (with validation)", wall, cpu, result)

    cpu_median, cpu_p95, wall_median, wall_p95 = headline
    met = cpu_median <= TARGET_MS and cpu_p95 <= TARGET_MS
    print(
        f"\nall procedures, 6 members: median {cpu_median:.3f} ms / p95 {cpu_p95:.3f} ms CPU "
        f"(wall {wall_median:.3f} / {wall_p95:.3f} ms) — target ≤ {TARGET_MS:.0f} ms: {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
