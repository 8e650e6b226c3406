"""The bias-variance decomposition of a model's expected squared error, measured: train the
same configuration on many independently drawn training sets and predict at fixed points where
the true function f is known. With predictions p_k(x) of models k = 1..K,

    bias^2   = mean_x (mean_k p_k(x) - f(x))^2
    variance = mean_x mean_k (p_k(x) - mean_k p_k(x))^2
    noise    = sigma^2 (the label noise, known for synthetic data)

and the expected error on a fresh noisy label, mean_x mean_k (p_k(x) - f(x))^2 + sigma^2, is
their sum exactly (the population variance over k makes the identity hold term by term).
"""

from __future__ import annotations

import numpy as np


def decompose(predictions: np.ndarray, truth: np.ndarray, noise_variance: float) -> dict[str, float]:
    """`bias2`, `variance`, `noise` and `expected_error` of predictions (models, points) of a
    function whose true values at those points are `truth` (points,)."""
    predictions = np.asarray(predictions, np.float64)
    truth = np.asarray(truth, np.float64)
    if predictions.ndim != 2 or predictions.shape[1] != truth.shape[0]:
        raise ValueError(f"predictions must be (models, points) with points = {truth.shape[0]}; given {predictions.shape}")
    mean = predictions.mean(axis=0)
    bias2 = float(np.mean((mean - truth) ** 2))
    variance = float(np.mean(predictions.var(axis=0)))
    error = float(np.mean((predictions - truth) ** 2)) + noise_variance
    return {"bias2": bias2, "variance": variance, "noise": float(noise_variance), "expected_error": error}
