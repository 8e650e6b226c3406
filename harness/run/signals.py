"""SIGTERM (what Slurm, Kubernetes, systemd and `timeout` send) stops a study like Ctrl-C: Ray
Tune saves the study's state and stops its trials, the harness closes the runs and prints the
resume command.

Ray replaces a driver's SIGTERM handler twice: `ray.init` installs one that exits at once, and
its core worker installs a fatal-signal handler that prints a stack and aborts (exit 134),
leaving MLflow runs RUNNING. So the harness's handler is put back after `ray.init` and again at
every step of the tuning loop (`SigtermGuard`); a signal handler is one system call to set.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from ray.tune import Callback


def _forward(signum: int, frame: Any) -> None:
    os.kill(os.getpid(), signal.SIGINT)


def stop_on_sigterm() -> None:
    """From now on SIGTERM acts as Ctrl-C in this process (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _forward)


def rearm() -> None:
    """Put the harness's SIGTERM handler back if it was chosen (Ray may have replaced it)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        _forward,
        None,
    ):
        signal.signal(signal.SIGTERM, _forward)


def chosen() -> bool:
    return signal.getsignal(signal.SIGTERM) is _forward


class SigtermGuard(Callback):
    """Re-arms the SIGTERM handler at the start of every step of Ray Tune's loop."""

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        rearm()
