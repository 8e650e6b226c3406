"""Retrying a trial lost with its node, and only then.

Ray Tune's `FailureConfig.max_failures` retries a trial after any failure, its own errors
included (a NaN loss, a bad configuration), which would only fail again after training the
same epochs once more. The driver lets Ray retry every failed trial
(`RETRIES_AFTER_NODE_LOSS`), and when the failure was the trial's own it records that, before
the trial restarts, under the trial's id in the cluster's key-value store; every trainable
first asks (`refuse_a_retry_of_an_error`) and fails at once if it is such a retry. What is
retried is a trial whose worker died under it (the node lost, the worker process killed): it
continues from its last checkpoint, on any node.
"""

from __future__ import annotations

# Retries of one trial whose worker or node was lost; a trial's own error is never retried.
RETRIES_AFTER_NODE_LOSS = 3
_NAMESPACE = "harness-refused-retries"


class NotRetried(RuntimeError):
    """A trial failed with its own error: the retry Ray Tune started ends at once."""


def _key(trial_id: str) -> bytes:
    return trial_id.encode()


def refuse_retry(trial_id: str, reason: str) -> None:
    """Driver side: the retry of `trial_id` that Ray Tune is about to start must not train."""
    from ray.experimental.internal_kv import _internal_kv_put

    _internal_kv_put(_key(trial_id), reason.encode(), overwrite=True, namespace=_NAMESPACE)


def refuse_a_retry_of_an_error() -> None:
    """Worker side, first thing in a trainable: raise NotRetried if this start is Ray Tune's
    retry of a trial that failed with its own error."""
    from ray import tune
    from ray.experimental.internal_kv import _internal_kv_get

    reason = _internal_kv_get(_key(tune.get_context().get_trial_id()), namespace=_NAMESPACE)
    if reason is not None:
        raise NotRetried(reason.decode())
