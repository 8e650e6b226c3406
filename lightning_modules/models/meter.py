"""Per-epoch sums of a split's loss and correct predictions, kept as on-device tensors and read
once per epoch: logging every step through Lightning costs more than a small model's step."""

from __future__ import annotations

import torch


class EpochMeter:
    """Sample-weighted sums per split; `means(split)` turns them into `loss` and `acc`."""

    def __init__(self) -> None:
        self._sums: dict[str, dict[str, torch.Tensor | int]] = {}

    def reset(self, split: str) -> None:
        self._sums.pop(split, None)

    def add(
        self, split: str, loss: torch.Tensor, n: int, correct: torch.Tensor | None = None,
        calibration: torch.Tensor | None = None,
    ) -> None:
        """Add a batch of `n` samples with mean `loss`, `correct` predictions (a count) and
        per-confidence-bin sums (`Task.calibration`)."""
        # The sample count is known on the host: a Python int costs no tensor op per step. Plain
        # branches rather than a loop over a dict: this runs once per optimizer step.
        loss_sum = loss.detach() * n
        sums = self._sums.get(split)
        if sums is None:
            sums = self._sums[split] = {"loss": loss_sum, "n": n}
        else:
            sums["loss"] = sums["loss"] + loss_sum
            sums["n"] = sums["n"] + n
        if correct is not None:
            sums["correct"] = sums["correct"] + correct if "correct" in sums else correct
        if calibration is not None:
            sums["calibration"] = sums["calibration"] + calibration if "calibration" in sums else calibration

    def has(self, split: str) -> bool:
        return bool(self._sums.get(split))

    def means(self, split: str) -> dict[str, float]:
        """`loss` (and `acc`, and `ece` where calibration was added) of the split since its last
        reset; empty when nothing was added."""
        sums = self._sums.get(split)
        if not sums:
            return {}
        n = sums["n"]
        out = {"loss": sums["loss"].item() / n}  # type: ignore[union-attr]
        if "correct" in sums:
            out["acc"] = sums["correct"].item() / n  # type: ignore[union-attr]
        if "calibration" in sums:
            out["ece"] = expected_calibration_error(sums["calibration"])  # type: ignore[arg-type]
        return out

    def reliability(self, split: str) -> list[dict[str, float]]:
        """The split's reliability table: per non-empty confidence bin, its range, share of
        predictions, mean confidence and accuracy."""
        calibration = self._sums.get(split, {}).get("calibration")
        return [] if calibration is None else reliability_table(calibration)  # type: ignore[arg-type]


def expected_calibration_error(calibration: torch.Tensor) -> float:
    """ECE (Naeini et al., 2015): sum over bins of |correct - confidence sums| / predictions,
    i.e. the bins' |accuracy - confidence| weighted by their share of predictions."""
    counts, confidence, correct = calibration.tolist()  # a few dozen numbers: summed on the host
    total = sum(counts)
    return sum(abs(c - f) for c, f in zip(correct, confidence)) / total if total > 0 else float("nan")


def reliability_table(calibration: torch.Tensor) -> list[dict[str, float]]:
    counts, confidence, correct = calibration.double().cpu()
    bins, total = len(counts), float(counts.sum())
    return [
        {
            "lower": i / bins, "upper": (i + 1) / bins, "share": float(counts[i]) / total,
            "confidence": float(confidence[i] / counts[i]), "accuracy": float(correct[i] / counts[i]),
        }
        for i in range(bins) if counts[i] > 0
    ]
