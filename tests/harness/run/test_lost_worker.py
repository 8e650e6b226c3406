"""Which failures count as a lost worker (retried) and which are the trial's own (never
retried), from the error file Ray Tune writes for a trial."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from harness.run.callbacks import lost_worker

NODE_LOST = (
    "The actor 7639e87aaf7f2eb881df051306000000 is unavailable: The actor is temporarily unavailable: "
    "RpcError: RPC error: Socket closed rpc_code: 14. The task may or may not have been executed on the actor."
)
OWN_ERROR = 'ray::ImplicitFunc.train() (pid=1, ip=127.0.0.1)\n  File "x.py", line 1\nNonFiniteLossError: train/loss became nan\n'


def cause(tmp_path: Path, *failures: str) -> str | None:
    text = "".join(f"Failure # {i} (occurred at 2026-12-02_16-24-03)\n{f}\n" for i, f in enumerate(failures, 1))
    (tmp_path / "error.txt").write_text(text)
    return lost_worker(SimpleNamespace(error_file=str(tmp_path / "error.txt"), get_error=lambda: None))  # type: ignore[arg-type]


def test_a_lost_node_or_process_is_a_lost_worker(tmp_path: Path) -> None:
    assert cause(tmp_path, NODE_LOST) == NODE_LOST
    died = "The actor died unexpectedly before finishing this task.\n\tclass_name: ImplicitFunc"
    assert cause(tmp_path, died) == "The actor died unexpectedly before finishing this task."


def test_the_trials_own_error_is_not(tmp_path: Path) -> None:
    assert cause(tmp_path, OWN_ERROR) is None
    assert cause(tmp_path, "The actor died because of an error raised in its creation task, ...") is None
    # The last failure decides: a lost worker, then the trial's own error on the retry.
    assert cause(tmp_path, NODE_LOST, OWN_ERROR) is None
    assert cause(tmp_path, OWN_ERROR, NODE_LOST) == NODE_LOST
