"""Several study executions at once, each in a driver process of its own, on one Ray cluster.

A comparison or a claims run is many independent executions (strategy x seed, arm x seed). Each
runs in a child process (`harness.run.child`) that connects to the cluster the caller started
or joined and is an ordinary study execution: its own Tuner, searcher state, seed, budget,
study folder and MLflow run tree. Processes, not threads, because Ray Tune's driver loop keeps
per-process state (signal handlers, its experiment-state saving, the progress output) and
because an execution that crashes must not take its neighbours with it.

Faults: a Ctrl-C or SIGTERM to the caller stops launching and forwards one SIGINT to every
running child (a second forwards another: Ray Tune then stops at once); each child stops as a
study does (state saved, runs KILLED, exit 130). A child dies with its caller when the caller
is SIGKILLed (it asks the kernel for that at start-up), exactly like a killed study driver:
`harness resume` continues every execution from its own saved state.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ANNOUNCED, RESULT, JOB, LOG = ".announced.json", ".result.json", ".job.json", ".log"
INTERRUPTED_EXIT = 130
POLL_S = 0.2


@dataclass
class Job:
    """One execution to run: a new one from its resolved study spec, or one to continue from
    its study folder."""

    key: str  # unique in the pool's folder: names the job's files
    label: str  # how its output lines are prefixed
    tracking_uri: str
    study: dict[str, Any] | None = None
    folder: str | None = None  # a study folder to resume instead
    storage: str | None = None
    parent_run_id: str | None = None
    run_tags: dict[str, str] = field(default_factory=dict)
    progress: bool = False  # the child's per-trial lines (relayed with the label)


@dataclass
class JobResult:
    """What a child left: its study folder and run, whether it was interrupted, the error that
    ended it (None when it completed), and the outcome's chosen trials and test scores."""

    key: str
    folder: str | None = None
    run_id: str | None = None
    interrupted: bool = False
    error: str | None = None
    top: list[dict[str, Any]] = field(default_factory=list)
    test_metrics: dict[str, float] = field(default_factory=dict)


def auto_parallel(executions: int, cpus_per_trial: float, max_concurrent_trials: int | None) -> int:
    """How many executions fill the cluster: its CPUs over what one execution keeps busy
    (`max_concurrent_trials` trials; one without a cap fills the cluster alone), at most one
    driver per CPU of this machine (the drivers all run here) and never more than there are."""
    import ray

    slots = max(1, math.floor(float(ray.cluster_resources().get("CPU", 1.0)) / max(cpus_per_trial, 1e-9)))
    per_execution = min(max_concurrent_trials or slots, slots)
    return max(1, min(executions, slots // per_execution, max(2, os.cpu_count() or 1)))


class _Stop:
    """Ctrl-C or SIGTERM for the whole pool: stop launching, forward SIGINT to every child."""

    def __init__(self) -> None:
        self.requested = 0
        self.children: list[subprocess.Popen[str]] = []

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested += 1
        if self.requested == 1:
            print("stopping: each running execution saves its state (Ctrl-C again to stop at once)",
                  file=sys.stderr, flush=True)  # fmt: skip
        for child in self.children:
            if child.poll() is None:
                try:
                    child.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass


class _Child:
    """A running job: its process, the thread copying its output, whether it has announced."""

    def __init__(self, job: Job, folder: Path, address: str, echo: Callable[[str], None] | None) -> None:
        self.job, self.folder, self.announced = job, folder, False
        job_file = folder / f"{job.key}{JOB}"
        for stale in (ANNOUNCED, RESULT):
            (folder / f"{job.key}{stale}").unlink(missing_ok=True)
        job_file.write_text(json.dumps({**asdict(job), "address": address, "parent_pid": os.getpid()}))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Its own session: a terminal's Ctrl-C reaches the pool only, which forwards it once.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harness.run.child", str(job_file)], env=env, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )  # fmt: skip
        self.log = folder / f"{job.key}{LOG}"
        self.thread = threading.Thread(target=self._copy, args=(echo,), daemon=True)
        self.thread.start()

    def _copy(self, echo: Callable[[str], None] | None) -> None:
        assert self.process.stdout is not None
        with self.log.open("a") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if echo is not None:
                    echo(f"{self.job.label} | {line.rstrip()}")

    def announcement(self) -> dict[str, str] | None:
        return read_json(self.folder / f"{self.job.key}{ANNOUNCED}")

    def result(self, stopping: bool) -> JobResult:
        """What the child wrote, or, when it wrote nothing, what its exit says (a child stopped
        by the pool before it could write counts as stopped, not failed)."""
        self.thread.join(timeout=10)
        raw = read_json(self.folder / f"{self.job.key}{RESULT}")
        if raw is not None:
            return JobResult(**raw)
        announced = self.announcement() or {}
        tail = self.log.read_text()[-3000:] if self.log.is_file() else ""
        code = self.process.returncode
        return JobResult(
            self.job.key, announced.get("folder"), announced.get("run_id"),
            interrupted=stopping or code in (INTERRUPTED_EXIT, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL),
            error=f"the execution's driver ended with exit code {code} (log {self.log}):\n{tail}",
        )  # fmt: skip


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not there yet, or being replaced


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str))
    tmp.replace(path)  # atomic: a reader sees the old file or the new one


def run_jobs(
    jobs: list[Job],
    folder: Path,
    parallel: int,
    *,
    on_start: Callable[[Job], None] = lambda job: None,
    on_announce: Callable[[Job, str, str], None] = lambda job, folder, run_id: None,
    on_done: Callable[[Job, JobResult], None] = lambda job, result: None,
    echo: Callable[[str], None] | None = print,
) -> bool:
    """Run `jobs` in order, `parallel` at a time, on the Ray cluster this process is connected
    to; `on_announce(job, study_folder, run_id)` as soon as a child's execution exists,
    `on_done(job, result)` when it ends. Returns True when a Ctrl-C or SIGTERM stopped the pool
    (running children were stopped and said so in their results; the rest never started)."""
    import ray

    from harness.run import signals  # imports Ray: not at module level, which a child reads first

    address = ray.get_runtime_context().gcs_address
    folder.mkdir(parents=True, exist_ok=True)
    pending, running = list(jobs), []
    stop = _Stop()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, stop) if main else None
    try:
        while pending or running:
            while pending and len(running) < parallel and not stop.requested:
                job = pending.pop(0)
                on_start(job)
                child = _Child(job, folder, address, echo)
                stop.children.append(child.process)
                running.append(child)
            if stop.requested and not running:
                break
            time.sleep(POLL_S)
            if main:
                signals.rearm()  # Ray may have put its own SIGTERM handler back
            for child in list(running):
                if not child.announced and (announced := child.announcement()) is not None:
                    child.announced = True
                    on_announce(child.job, announced["folder"], announced["run_id"])
                if child.process.poll() is None:
                    continue
                running.remove(child)
                result = child.result(bool(stop.requested))
                if not child.announced and result.folder and result.run_id:
                    on_announce(child.job, result.folder, result.run_id)
                on_done(child.job, result)
    except BaseException:
        for child in running:  # the caller is going away: so do its executions, cleanly
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGINT)
        for child in running:
            try:
                child.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.process.kill()
        raise
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    return bool(stop.requested)
