"""Shared helpers for the benchmark scripts: interleaved timing, medians, markdown tables."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Lap:
    """One timed call: CPU seconds of this process and wall-clock seconds."""

    cpu: float
    wall: float


class Stopwatch:
    """Starts when created; `lap()` is the CPU and wall time since.

    For single-threaded work CPU time is the better measure on a shared machine: it leaves out
    the time other processes hold the core, which wall time counts and which varies run to run.
    """

    def __init__(self) -> None:
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def lap(self) -> Lap:
        return Lap(time.process_time() - self._cpu, time.perf_counter() - self._wall)


def interleaved(
    variants: dict[str, Callable[[], Lap | None]], repeats: int, warmup: int = 1, log: bool = True
) -> dict[str, list[Lap]]:
    """The timed calls of each variant, the variants run in turn and their order rotated every
    repeat, so that drift in machine load falls on all of them alike.

    A variant may return its own `Lap` (to leave out set-up it must not count); otherwise the
    whole call is timed. `warmup` rounds run first and are discarded.
    """
    names = list(variants)
    laps: dict[str, list[Lap]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            watch = Stopwatch()
            lap = variants[name]() or watch.lap()
            if round_ >= warmup:
                laps[name].append(lap)
                if log:
                    print(
                        f"  repeat {round_ - warmup + 1}/{repeats} {name}: wall {lap.wall:.3f} s, cpu {lap.cpu:.3f} s",
                        file=sys.stderr,
                    )
    return laps


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """min-max of the repeats, as a compact text."""
    return f"{min(values):.3g}-{max(values):.3g}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """One line describing where the numbers were taken."""
    import torch

    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )
