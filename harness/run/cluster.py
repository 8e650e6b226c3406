"""Ray for a study: connect to a running cluster or start a local one."""

from __future__ import annotations

import logging
import os

from harness.errors import SpecError


def init_ray(address: str | None) -> None:
    """Connect to a running cluster (`auto`, `host:port`, `ray://...`) or start a local one."""
    import ray

    # Experiment state is cheap to save for studies of this size: save it often, so that a
    # killed driver loses as little as possible.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The harness draws its own progress view; Ray's console reporter would repeat it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise SpecError(f"--address {address!r}: cannot connect to a Ray cluster there ({exc})") from None
