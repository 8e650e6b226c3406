"""Expected calibration error and the reliability table on hand-made predictions."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_modules.models.meter import EpochMeter, expected_calibration_error, reliability_table
from lightning_modules.models.tasks import CALIBRATION_BINS, TASKS


def logits_with_confidence(confidence: float, n: int, classes: int = 4, predicted: int = 0) -> torch.Tensor:
    """Logits whose softmax puts `confidence` on class `predicted` and the rest evenly elsewhere."""
    rest = (1.0 - confidence) / (classes - 1)
    probs = torch.full((n, classes), rest)
    probs[:, predicted] = confidence
    return probs.log()


def test_overconfident_predictions_have_the_gap_as_ece() -> None:
    # 10 predictions at confidence 0.9, half of them right: ECE = |0.5 - 0.9| = 0.4.
    out = logits_with_confidence(0.9, 10)
    y = torch.tensor([0] * 5 + [1] * 5)
    sums = TASKS.get("classification").calibration(out, y)
    assert sums.shape == (3, CALIBRATION_BINS)
    assert expected_calibration_error(sums) == pytest.approx(0.4, abs=1e-6)


def test_perfectly_calibrated_bins_have_zero_ece_and_mixed_bins_weigh_by_share() -> None:
    task = TASKS.get("classification")
    # Bin A: 4 predictions at 0.75, 3 right (calibrated). Bin B: 6 at 0.95, 3 right (gap 0.45).
    out = torch.cat([logits_with_confidence(0.75, 4), logits_with_confidence(0.95, 6)])
    y = torch.tensor([0, 0, 0, 1] + [0, 0, 0, 1, 1, 1])
    sums = task.calibration(out, y)
    assert expected_calibration_error(sums) == pytest.approx(6 / 10 * 0.45, abs=1e-6)
    table = reliability_table(sums)
    assert [round(r["share"], 6) for r in table] == [0.4, 0.6]
    assert table[0]["accuracy"] == pytest.approx(0.75) and table[0]["confidence"] == pytest.approx(0.75)
    assert table[1]["accuracy"] == pytest.approx(0.5) and table[1]["confidence"] == pytest.approx(0.95)
    assert all(r["lower"] <= r["confidence"] < r["upper"] for r in table)


def test_the_meter_sums_batches_into_one_ece_and_skips_training() -> None:
    meter = EpochMeter()
    task = TASKS.get("classification")
    for confidence, right in ((0.9, True), (0.9, False)):
        out = logits_with_confidence(confidence, 5)
        y = torch.zeros(5, dtype=torch.long) if right else torch.ones(5, dtype=torch.long)
        meter.add("val", torch.tensor(1.0), 5, task.correct(out, y).sum(), task.calibration(out, y))
    assert meter.means("val")["ece"] == pytest.approx(0.4, abs=1e-6)
    meter.add("train", torch.tensor(1.0), 5, torch.tensor(5.0))
    assert "ece" not in meter.means("train")
    assert TASKS.get("regression").calibration(torch.zeros(3, 1), torch.zeros(3)) is None


def test_per_step_targets_count_every_prediction() -> None:
    out = logits_with_confidence(0.6, 6).reshape(2, 3, 4)  # 2 sequences of 3 steps
    y = torch.tensor([[0, 0, 1], [1, 1, 1]])  # 2 of 6 right
    sums = TASKS.get("classification").calibration(out, y)
    assert float(sums[0].sum()) == 6
    assert expected_calibration_error(sums) == pytest.approx(abs(2 / 6 - 0.6), abs=1e-6)


def test_no_predictions_is_nan() -> None:
    assert math.isnan(expected_calibration_error(torch.zeros(3, CALIBRATION_BINS)))
