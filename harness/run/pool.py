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
JOB_MARK = "@@harness-job "  # a child prints it, with the job's key, as a job starts
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
    """Ctrl-C or SIGTERM for the whole pool: stop launching, forward SIGINT to every child
    that is running an execution."""

    def __init__(self) -> None:
        self.requested = 0
        self.children: list[_Child] = []

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested += 1
        if self.requested == 1:
            print("stopping: each running execution saves its state (Ctrl-C again to stop at once)",
                  file=sys.stderr, flush=True)  # fmt: skip
        for child in self.children:
            if child.job is not None and child.process.poll() is None:
                try:
                    child.process.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass


class _Child:
    """A driver process that runs the executions it is given, one after another: the imports
    and the connection to Ray (seconds) are paid once per process, not once per execution.
    Jobs go down its stdin, one job file per line; its output comes back through a thread that
    files each line in the log of the job that printed it (the child marks where a job starts)."""

    def __init__(self, folder: Path, address: str, echo: Callable[[str], None] | None) -> None:
        self.folder, self.address, self.echo = folder, address, echo
        self.job: Job | None = None
        self.announced = False
        self.labels: dict[str, str] = {}
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Its own session: a terminal's Ctrl-C reaches the pool only, which forwards it once.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harness.run.child", str(os.getpid())], env=env, start_new_session=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )  # fmt: skip
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def assign(self, job: Job) -> None:
        self.job, self.announced = job, False
        self.labels[job.key] = job.label
        for stale in (ANNOUNCED, RESULT):
            (self.folder / f"{job.key}{stale}").unlink(missing_ok=True)
        job_file = self.folder / f"{job.key}{JOB}"
        job_file.write_text(json.dumps({**asdict(job), "address": self.address}))
        assert self.process.stdin is not None
        self.process.stdin.write(f"{job_file}\n")
        self.process.stdin.flush()

    def release(self) -> None:
        """No more jobs: the child ends once its current one has."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass

    def _copy(self) -> None:
        assert self.process.stdout is not None
        key, log = None, None
        for line in self.process.stdout:
            if line.startswith(JOB_MARK):
                key = line[len(JOB_MARK) :].strip()
                if log is not None:
                    log.close()
                log = (self.folder / f"{key}{LOG}").open("a")
                continue
            if log is not None:
                log.write(line)
                log.flush()
            if self.echo is not None:
                self.echo(f"{self.labels.get(key or '', 'driver')} | {line.rstrip()}")
        if log is not None:
            log.close()

    def announcement(self) -> dict[str, str] | None:
        return None if self.job is None else read_json(self.folder / f"{self.job.key}{ANNOUNCED}")

    def finished(self) -> JobResult | None:
        """The current job's result once the child wrote it (the child then takes the next)."""
        if self.job is None:
            return None
        raw = read_json(self.folder / f"{self.job.key}{RESULT}")
        return None if raw is None else JobResult(**raw)

    def died(self, stopping: bool) -> JobResult:
        """The current job's result when the child ended without writing one: what its exit
        says (a child stopped by the pool before it could write counts as stopped)."""
        assert self.job is not None
        self.thread.join(timeout=10)
        raw = read_json(self.folder / f"{self.job.key}{RESULT}")
        if raw is not None:
            return JobResult(**raw)
        announced = self.announcement() or {}
        log = self.folder / f"{self.job.key}{LOG}"
        tail = log.read_text()[-3000:] if log.is_file() else ""
        code = self.process.returncode
        return JobResult(
            self.job.key, announced.get("folder"), announced.get("run_id"),
            interrupted=stopping or code in (INTERRUPTED_EXIT, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL),
            error=f"the execution's driver ended with exit code {code} (log {log}):\n{tail}",
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
    """Run `jobs` in order, `parallel` at a time, in at most `parallel` driver processes on the
    Ray cluster this process is connected to; `on_announce(job, study_folder, run_id)` as soon as
    an execution exists, `on_done(job, result)` when it ends. Returns True when a Ctrl-C or
    SIGTERM stopped the pool (running executions were stopped and said so in their results; the
    rest never started)."""
    import ray

    from harness.run import signals  # imports Ray: not at module level, which a child reads first

    address = ray.get_runtime_context().gcs_address
    folder.mkdir(parents=True, exist_ok=True)
    pending = list(jobs)
    stop = _Stop()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, stop) if main else None
    children = stop.children
    try:
        while pending or any(child.job is not None for child in children):
            if not stop.requested:
                while pending and len(children) < min(parallel, len(pending) + sum(c.job is not None for c in children)):
                    children.append(_Child(folder, address, echo))
                for child in children:
                    if child.job is None and pending and child.process.poll() is None:
                        on_start(pending[0])
                        child.assign(pending.pop(0))
            elif not any(child.job is not None for child in children):
                break
            time.sleep(POLL_S)
            if main:
                signals.rearm()  # Ray may have put its own SIGTERM handler back
            for child in list(children):
                job = child.job
                if job is None:
                    if child.process.poll() is not None or stop.requested or not pending:
                        child.release()
                        if child.process.poll() is not None:
                            children.remove(child)
                    continue
                if not child.announced and (announced := child.announcement()) is not None:
                    child.announced = True
                    on_announce(job, announced["folder"], announced["run_id"])
                result = child.finished()
                if result is None and child.process.poll() is not None:
                    result = child.died(bool(stop.requested))
                    children.remove(child)  # a fresh process takes the next job
                if result is None:
                    continue
                child.job = None
                if not child.announced and result.folder and result.run_id:
                    on_announce(job, result.folder, result.run_id)
                on_done(job, result)
    except BaseException:
        for child in children:  # the caller is going away: so do its executions, cleanly
            if child.job is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGINT)
        raise
    finally:
        for child in children:
            child.release()
        for child in children:
            try:
                child.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.process.kill()
        if main:
            signal.signal(signal.SIGINT, previous)
    return bool(stop.requested)
