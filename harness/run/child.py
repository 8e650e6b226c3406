"""`python -m harness.run.child JOB_FILE`: one study execution for a pool (`harness.run.pool`).

Reads the job, joins the Ray cluster the pool is connected to, runs or resumes the study, and
leaves two small files beside the job: the announcement (study folder and MLflow run, written
as soon as they exist) and the result. Exit 0 when the execution completed, 130 when it was
stopped (its state is saved; the pool's caller resumes it), 1 with a traceback on an error.
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
    from harness.run.pool import ANNOUNCED, JOB, RESULT, JobResult, read_json, write_json

    job_file = Path(argv[0])
    job: dict[str, Any] = read_json(job_file) or {}
    _die_with(job["parent_pid"])
    base = job_file.with_name(job_file.name.removesuffix(JOB))
    try:
        return _execute(job, base)
    except KeyboardInterrupt:  # at any moment, even while importing: a stop, not a failure
        announced = read_json(Path(f"{base}{ANNOUNCED}")) or {}
        result = JobResult(job["key"], announced.get("folder"), announced.get("run_id"), interrupted=True)
        write_json(Path(f"{base}{RESULT}"), asdict(result))
        return 130


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
