"""`python -m harness.run.child POOL_PID`: a driver process of a pool (`harness.run.pool`).

Reads job files from stdin, one path per line, and runs each (a study execution, new or
resumed) in turn on the Ray cluster the pool is connected to; stdin closed: done. For each job
it prints a marker line with the job's key (the pool files the output that follows in that
job's log) and leaves two small files beside the job: the announcement (study folder and MLflow
run, written as soon as they exist) and the result (written last: the pool takes it as the end
of the job). Exit 0 when stdin closed, 130 when stopped while idle.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with(parent_pid: int) -> None:
    """Be killed (SIGKILL) when the pool's process dies, as a study's driver would be: its
    saved state is what `harness resume` continues from. Linux only; elsewhere the child
    finishes its execution on its own."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def main(argv: list[str]) -> int:
    from harness.run.pool import ANNOUNCED, JOB, JOB_MARK, RESULT, JobResult, read_json, write_json

    _die_with(int(argv[0]))
    while True:
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            return 130
        if not line:
            return 0
        job_file = Path(line.strip())
        job: dict[str, Any] = read_json(job_file) or {}
        base = job_file.with_name(job_file.name.removesuffix(JOB))
        print(f"{JOB_MARK}{job['key']}", flush=True)
        try:
            _execute(job, base)
        except KeyboardInterrupt:  # at any moment, even while importing: a stop, not a failure
            announced = read_json(Path(f"{base}{ANNOUNCED}")) or {}
            result = JobResult(job["key"], announced.get("folder"), announced.get("run_id"), interrupted=True)
            write_json(Path(f"{base}{RESULT}"), asdict(result))
        except Exception as exc:
            import traceback

            traceback.print_exc()
            announced = read_json(Path(f"{base}{ANNOUNCED}")) or {}
            error = f"{type(exc).__name__}: {exc} (log {base}.log)"
            result = JobResult(job["key"], announced.get("folder"), announced.get("run_id"), error=error)
            write_json(Path(f"{base}{RESULT}"), asdict(result))


def _execute(job: dict[str, Any], base: Path) -> int:
    from harness.run.cluster import prepare_auth
    from harness.run.pool import ANNOUNCED, RESULT, JobResult, read_json, write_json
    from harness.run.signals import stop_on_sigterm

    prepare_auth(job["address"])  # the pool's environment already says how (a no-op then)
    stop_on_sigterm()

    from harness.run.execute import resume_study, run_study
    from harness.study import StudySpec

    def announce(folder: Path) -> None:
        saved = read_json(folder / "harness_study.json") or {}
        run_id = saved.get("study", {}).get("parent_run_id")
        write_json(Path(f"{base}{ANNOUNCED}"), {"folder": str(folder), "run_id": run_id})

    if job.get("folder"):
        announce(Path(job["folder"]))
        outcome = resume_study(job["folder"], address=job["address"])
    else:
        outcome = run_study(
            StudySpec.model_validate(job["study"]), address=job["address"], tracking_uri=job["tracking_uri"],
            storage=job["storage"], progress=job["progress"], announce=announce,
            parent_run_id=job["parent_run_id"], run_tags=job["run_tags"],
        )  # fmt: skip
    result = JobResult(
        job["key"], str(outcome.experiment_path), outcome.study.parent_run_id, interrupted=outcome.interrupted,
        top=outcome.top, test_metrics=dict(outcome.test_metrics),
    )  # fmt: skip
    write_json(Path(f"{base}{RESULT}"), asdict(result))
    return 130 if outcome.interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
