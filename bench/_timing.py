"""Timing helpers shared by the render benchmarks: wall and CPU time per call, median/p95 lines."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)  # ms
    cpu: list[float] = field(default_factory=list)  # ms, this process (or its children)


def _cpu_seconds(children: bool) -> float:
    if not children:
        return time.process_time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(count: int, run: Callable[[int], object], *, children: bool = False) -> Timing:
    """Call `run(i)` for i in 0..count-1, timing each call (CPU of this process, or of children)."""
    timing = Timing()
    for index in range(count):
        cpu = _cpu_seconds(children)
        start = time.perf_counter()
        run(index)
        timing.wall.append((time.perf_counter() - start) * 1000)
        timing.cpu.append((_cpu_seconds(children) - cpu) * 1000)
    return timing


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summary(label: str, timing: Timing) -> str:
    wall, cpu = timing.wall, timing.cpu
    return (
        f"  {label:<34} median {statistics.median(wall):6.1f} ms  p95 {p95(wall):6.1f}  "
        f"min {min(wall):6.1f}  │ CPU median {statistics.median(cpu):6.1f} ms  p95 {p95(cpu):6.1f}  "
        f"(n={len(wall)})"
    )
