"""Regime labelling: bin a regime variable (a motor's temperature, say) into groups, and score a
model per group, so that a good overall score cannot hide a bad operating regime."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from sklearn.base import BaseEstimator, TransformerMixin

from lightning_modules.data.datasets import DataKind
from lightning_modules.data.preprocessing import Step, StepConfig, register_step


class RegimeBins(BaseEstimator, TransformerMixin):
    """Learns `bins` bin edges of a 1-D variable (equal counts: `quantile`; equal widths:
    `uniform`) and labels values with their bin index 0..bins-1 (values outside the learned range
    fall in the first or last bin)."""

    def __init__(self, bins: int = 3, strategy: Literal["quantile", "uniform"] = "quantile") -> None:
        self.bins, self.strategy = bins, strategy

    def fit(self, values: np.ndarray, y: np.ndarray | None = None) -> RegimeBins:
        values = np.asarray(values, np.float64)
        if self.strategy == "quantile":
            edges = np.quantile(values, np.linspace(0, 1, self.bins + 1))
        else:
            edges = np.linspace(values.min(), values.max(), self.bins + 1)
        self.edges_ = edges
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        inner = self.edges_[1:-1]
        return np.searchsorted(inner, np.asarray(values, np.float64), side="right").astype(np.int64)

    def names(self, column: str) -> list[str]:
        """`<column>_bin_<i>` for each bin, the metric-key suffix of its scores."""
        return [f"{column}_bin_{i}" for i in range(self.bins)]

    def ranges(self) -> list[tuple[float, float]]:
        return [(float(lo), float(hi)) for lo, hi in zip(self.edges_[:-1], self.edges_[1:])]


@register_step
class RegimeBinsConfig(StepConfig):
    """Label each sample with the bin of its regime variable `column` (fitted on train); per-regime
    metrics and reports use these bins. Leaves the features unchanged."""

    name: Literal["regime_bins"] = "regime_bins"
    column: str = Field(description="a regime column of the dataset (motor: temperature, speed, load)")
    bins: int = Field(3, ge=2, le=20)
    strategy: Literal["quantile", "uniform"] = "quantile"

    def binner(self) -> RegimeBins:
        return RegimeBins(self.bins, self.strategy)

    def transformer(self, kind: DataKind) -> Step:
        raise TypeError("regime_bins labels samples; it does not transform features")


def grouped_metrics(
    split: str,
    losses: np.ndarray,
    correct: np.ndarray | None,
    groups: dict[str, np.ndarray],
    bin_names: dict[str, list[str]],
    task: str,
) -> dict[str, float]:
    """Per-regime scores from per-sample ones: `<split>/loss/<column>_bin_<i>` (the mean loss) and
    `<split>/acc/...` (classification) or `<split>/rmse/...` (regression, the root of the mean
    squared error). A bin with no sample in this split has no entry."""
    metrics: dict[str, float] = {}
    for column, labels in groups.items():
        for index, name in enumerate(bin_names[column]):
            members = labels == index
            if not members.any():
                continue
            loss = float(losses[members].mean())
            metrics[f"{split}/loss/{name}"] = loss
            if task == "classification" and correct is not None:
                metrics[f"{split}/acc/{name}"] = float(correct[members].mean())
            elif task == "regression":
                metrics[f"{split}/rmse/{name}"] = float(np.sqrt(loss))
    return metrics
