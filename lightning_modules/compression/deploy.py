"""From a compressed student to the file a user ships, and what that file measures: its
outputs (the accuracy is the deployed model's, not the training graph's), its size, and its
CPU latency beside the uncompressed teacher in the same process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lightning_modules.compression.artifact import (
    ONNX_FILE,
    PACKED_FILE,
    export_onnx,
    file_sizes,
    finish_onnx,
    load_packed,
    onnx_outputs,
    quantize_onnx,
    save_packed,
)
from lightning_modules.compression.latency import latencies_ms
from lightning_modules.compression.prune import parameter_counts
from lightning_modules.compression.steps import Student, weight_sparsity

FLOAT_FILE = "float.onnx"


@dataclass(frozen=True)
class Deployed:
    """A shipped artifact: an ONNX file run by ONNX Runtime, or a packed low-bit file run
    dequantized by PyTorch (no latency)."""

    path: Path
    runtime: str  # "onnxruntime" | "pytorch"

    def outputs(self, x: torch.Tensor, threads: int = 1) -> torch.Tensor:
        if self.runtime == "onnxruntime":
            return onnx_outputs(self.path, x, threads)
        with torch.no_grad():
            return load_packed(self.path)(x.cpu())


def deploy(student: Student, example: torch.Tensor, calibration: torch.Tensor, folder: Path) -> Deployed:
    """Write the student's artifact into `folder`: float ONNX, INT8 ONNX (ONNX Runtime's
    quantizer) or packed 4- / 2-bit weights; sparse weights stored sparse where that pays."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = student.quantize
    if cfg is not None and cfg.bits < 8:
        return Deployed(save_packed(student.net, cfg.scheme, folder / PACKED_FILE), "pytorch")
    if cfg is None:
        return Deployed(export_onnx(student.net, example, folder / ONNX_FILE), "onnxruntime")
    float_file = export_onnx(student.net, example, folder / FLOAT_FILE, sparse=False)
    target = quantize_onnx(float_file, folder / ONNX_FILE, cfg.scheme, cfg.activations, calibration[: cfg.calibration].numpy())
    float_file.unlink()
    return Deployed(finish_onnx(target), "onnxruntime")


def measure(
    teacher: nn.Module, student: Student, deployed: Deployed, example: torch.Tensor, folder: Path,
    *, threads: int = 1, batch: int = 256,
) -> dict[str, float]:
    """Size, parameters, sparsity and latency (batch 1 and `batch`) of the student's artifact,
    each beside the teacher's float ONNX export measured in the same process."""
    started = time.perf_counter()
    teacher_file = export_onnx(teacher, example, folder / "teacher.onnx")
    teacher_size, size = file_sizes(teacher_file), file_sizes(deployed.path)
    params, nonzero = parameter_counts(student.net)
    metrics = {
        "size/bytes": size["bytes"],
        "size/gzip_bytes": size["gzip_bytes"],
        "size/teacher_bytes": teacher_size["bytes"],
        "size/ratio": teacher_size["bytes"] / size["bytes"],
        "size/gzip_ratio": teacher_size["gzip_bytes"] / size["gzip_bytes"],
        "params/total": params,
        "params/nonzero": nonzero,
        "sparsity": weight_sparsity(student.net),
    }
    if deployed.runtime == "onnxruntime":
        sample = example.cpu().numpy()
        for rows, suffix in ((1, ""), (batch, "_batch")):
            repeats = 200 if rows == 1 else 30
            base, ms = latencies_ms([teacher_file, deployed.path], sample, rows, threads=threads, repeats=repeats)
            metrics[f"latency/ms{suffix}"] = ms
            metrics[f"latency/teacher_ms{suffix}"] = base
            metrics[f"latency/speedup{suffix}"] = base / ms
    teacher_file.unlink()
    metrics["overhead/measure_s"] = time.perf_counter() - started
    return metrics
