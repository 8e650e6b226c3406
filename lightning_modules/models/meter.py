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

    def add(self, split: str, loss: torch.Tensor, n: int, correct: torch.Tensor | None = None) -> None:
        """Add a batch of `n` samples with mean `loss` and `correct` predictions (a count)."""
        # The sample count is known on the host: a Python int costs no tensor op per step.
        add: dict[str, torch.Tensor | int] = {"loss": loss.detach() * n, "n": n}
        if correct is not None:
            add["correct"] = correct
        sums = self._sums.setdefault(split, {})
        for key, value in add.items():
            sums[key] = sums[key] + value if key in sums else value

    def has(self, split: str) -> bool:
        return bool(self._sums.get(split))

    def means(self, split: str) -> dict[str, float]:
        """`loss` (and `acc`) of the split since its last reset; empty when nothing was added."""
        sums = self._sums.get(split)
        if not sums:
            return {}
        n = sums["n"]
        out = {"loss": float(sums["loss"] / n)}
        if "correct" in sums:
            out["acc"] = float(sums["correct"] / n)
        return out
