"""Regime labelling: bin a regime variable (a motor's temperature, say) into groups, and score a
model per group, so that a good overall score cannot hide a bad operating regime."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from sklearn.base import BaseEstimator, TransformerMixin

from lightning_modules.data.datasets import DataKind
from lightning_modules.data.preprocessing import SplitArrays, Step, StepConfig, register_step


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


class RegimeBinning(Step):
    """The preprocessing step of `regime_bins`: learns the bins of regime column `column` on the
    data it is fitted on and labels every split's samples (`SplitArrays.groups`); the features
    pass through unchanged."""

    def __init__(self, column: str, bins: int = 3, strategy: Literal["quantile", "uniform"] = "quantile") -> None:
        self.column, self.bins, self.strategy = column, bins, strategy

    def fit_split(self, data: SplitArrays) -> RegimeBinning:
        self.binner_ = RegimeBins(self.bins, self.strategy).fit(data.regimes[self.column])
        return self

    def apply(self, split: str, part: SplitArrays) -> SplitArrays:
        labels = self.binner_.transform(part.regimes[self.column])
        return SplitArrays(part.x, part.y, part.regimes, {**part.groups, self.column: labels})

    def bin_names(self) -> dict[str, list[str]]:
        return {self.column: self.binner_.names(self.column)}


@register_step
class RegimeBinsConfig(StepConfig):
    """Label each sample with the bin of its regime variable `column` (fitted on train); per-regime
    metrics and reports use these bins. Leaves the features unchanged."""

    name: Literal["regime_bins"] = "regime_bins"
    column: str = Field(description="a regime column of the dataset (motor: temperature, speed, load)")
    bins: int = Field(3, ge=2, le=20)
    strategy: Literal["quantile", "uniform"] = "quantile"

    def transformer(self, kind: DataKind) -> Step:
        return RegimeBinning(self.column, self.bins, self.strategy)


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
    squared error). A bin with no sample in this split has no entry. Each column's worst bin is
    repeated as `<split>/<score>/<column>_worst`, the number an overall score can hide."""
    metrics: dict[str, float] = {}
    for column, labels in groups.items():
        by_score: dict[str, list[float]] = {}
        for index, name in enumerate(bin_names[column]):
            members = labels == index
            if not members.any():
                continue
            loss = float(losses[members].mean())
            scores = {"loss": loss}
            if task == "classification" and correct is not None:
                scores["acc"] = float(correct[members].mean())
            elif task == "regression":
                scores["rmse"] = float(np.sqrt(loss))
            for score, value in scores.items():
                metrics[f"{split}/{score}/{name}"] = value
                by_score.setdefault(score, []).append(value)
        for score, values in by_score.items():
            metrics[f"{split}/{score}/{column}_worst"] = min(values) if score == "acc" else max(values)
    return metrics
