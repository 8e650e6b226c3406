"""CPU latency of ONNX files in ONNX Runtime, a baseline and candidates measured side by side
in one process: fixed threads, warm-up, the median over repeats, and the rounds interleaved
so that drift on a shared machine affects all of them alike. Ratios to the baseline are what
carry over between machines; absolute times do not."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from lightning_modules.compression.artifact import INPUT, session


def latencies_ms(
    paths: list[Path], example: np.ndarray, batch: int, *, threads: int = 1, warmup: int = 5, repeats: int = 30
) -> list[float]:
    """Median milliseconds per call at `batch` (rows of `example`, repeated as needed) of each file."""
    rows = np.resize(example.astype(np.float32), (batch, *example.shape[1:]))
    sessions = [session(path, threads) for path in paths]
    for runner in sessions:
        for _ in range(warmup):
            runner.run(None, {INPUT: rows})
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeats):
        for runner, spent in zip(sessions, times):
            start = time.perf_counter()
            runner.run(None, {INPUT: rows})
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) * 1e3 for spent in times]
