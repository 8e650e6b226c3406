"""The deployable artifact of a compressed network and how it runs.

Float and INT8 networks ship as ONNX files and run in ONNX Runtime (INT8 on its integer
kernels: `QLinearMatMul`/`MatMulInteger`, `QLinearConv`); ONNX Runtime is the maintained CPU
path for integer inference (`torch.ao.quantization` is deprecated). Below 8 bits no CPU
kernel takes per-tensor or per-channel integer weights, so such a network ships as packed
integers (`pack`) with its scales and zero points, and runs dequantized in PyTorch: its
accuracy and size are real, its latency is not measured.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lightning_modules.compression.quantize import Scheme, dequantize, pack, quantize_tensor, unpack, weight_layers

ONNX_FILE, PACKED_FILE = "model.onnx", "model.packed.pt"
INPUT, OUTPUT = "x", "logits"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter and the quantizer print progress and advice on every call."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "root", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def export_onnx(net: nn.Module, example: torch.Tensor, path: Path, sparse: bool = True) -> Path:
    """`net` (on CPU, in eval mode) as one self-contained ONNX file with a dynamic batch axis,
    through the `torch.export`-based exporter (`sparse`: sparse initializers where they pay;
    off for a file ONNX Runtime's quantizer reads next, which takes dense ones only)."""
    net = copy.deepcopy(net).cpu().eval()
    batch = torch.export.Dim("batch", min=1)
    # Two samples: an example batch of 1 would specialize the batch axis to 1.
    sample = example[:1].repeat(2, *([1] * (example.ndim - 1))).cpu()
    with _quiet():
        torch.onnx.export(
            net, (sample,), str(path), input_names=[INPUT], output_names=[OUTPUT],
            dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False,
        )
    return finish_onnx(path, sparse)


def finish_onnx(path: Path, sparse: bool = True) -> Path:
    """Make an ONNX file what ships: without the exporter's per-node debugging metadata (stack
    traces, source names), and with each weight stored as a sparse initializer (non-zero values
    and their int64 flat indices) where that takes fewer bytes than the dense tensor. ONNX
    Runtime densifies sparse initializers on load: outputs and latency are unchanged."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.metadata_props[:]
    del model.graph.value_info[:]  # intermediate shapes: ONNX Runtime infers them itself
    model.doc_string = ""
    for init in list(model.graph.initializer) if sparse else []:
        dense = numpy_helper.to_array(init)
        nonzero = np.flatnonzero(dense)
        if dense.ndim < 2 or len(nonzero) * (dense.itemsize + 8) >= dense.size * dense.itemsize:
            continue
        values = numpy_helper.from_array(dense.ravel()[nonzero], init.name)
        indices = numpy_helper.from_array(nonzero.astype(np.int64), "")
        model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, list(dense.shape)))
        model.graph.initializer.remove(init)
    onnx.save(model, str(path))
    return path


class _Calibration:
    """Calibration batches for ONNX Runtime's static quantizer (a `CalibrationDataReader`)."""

    def __init__(self, x: np.ndarray, batch: int = 64) -> None:
        self.batches = iter([{INPUT: x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def quantize_onnx(source: Path, target: Path, scheme: Scheme, activations: bool, calibration: np.ndarray) -> Path:
    """An INT8 ONNX file: weights and activations (static, QDQ, activation ranges calibrated on
    `calibration`) or weights only (dynamic: activations are quantized per batch at run time)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    weight_type = QuantType.QInt8 if scheme.symmetric else QuantType.QUInt8
    options = {"WeightSymmetric": scheme.symmetric}
    with _quiet():
        if activations:
            reader = type("Reader", (_Calibration, CalibrationDataReader), {})(calibration.astype(np.float32))
            quantize_static(
                str(source), str(target), reader, quant_format=QuantFormat.QDQ, per_channel=scheme.per_channel,
                weight_type=weight_type, activation_type=QuantType.QUInt8,
                extra_options={**options, "ActivationSymmetric": False},
            )
        else:
            quantize_dynamic(
                str(source), str(target), per_channel=scheme.per_channel, weight_type=weight_type, extra_options=options
            )
    return target


def session(path: Path, threads: int = 1):  # -> onnxruntime.InferenceSession
    """An ONNX Runtime CPU session with a fixed thread count (sequential execution)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_outputs(path: Path, x: torch.Tensor, threads: int = 1, chunk: int = 1024) -> torch.Tensor:
    """The network's outputs for `x`, computed by the ONNX file in ONNX Runtime."""
    runner = session(path, threads)
    arrays = x.cpu().numpy().astype(np.float32)
    outs = [runner.run([OUTPUT], {INPUT: arrays[i : i + chunk]})[0] for i in range(0, len(arrays), chunk)]
    return torch.from_numpy(np.concatenate(outs))


# --- packed low-bit networks ----------------------------------------------------------------


@dataclass
class PackedWeight:
    shape: tuple[int, ...]
    data: bytes  # integers packed 8 // bits per byte (only the non-zero weights' when `mask` is set)
    scale: np.ndarray  # float16 per tensor or per output channel
    zero: np.ndarray  # int8
    mask: bytes | None = None  # one bit per weight, set where it is not zero: sparse storage


def _pack_weight(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int, offset: int) -> PackedWeight:
    """Dense packed integers, or (where it takes fewer bytes: a pruned layer) a bitmap of the
    non-zero weights and the packed integers of those alone, as Deep Compression stores them."""
    zeros = zero.reshape(-1, *([1] * (q.ndim - 1))).expand_as(q) if zero.numel() > 1 else zero.expand_as(q)
    nonzero = (q != zeros.to(q.dtype)).numpy()
    scale16, zero8 = scale.numpy().astype(np.float16), zero.numpy().astype(np.int8)
    values = q.numpy()
    if (values.size - int(nonzero.sum())) * bits > values.size:  # bitmap costs 1 bit, each zero saves `bits`
        return PackedWeight(tuple(q.shape), pack(values[nonzero], bits, offset), scale16, zero8, np.packbits(nonzero).tobytes())
    return PackedWeight(tuple(q.shape), pack(values, bits, offset), scale16, zero8)


def _unpack_weight(weight: PackedWeight, bits: int, offset: int) -> torch.Tensor:
    count = int(np.prod(weight.shape))
    if weight.mask is None:
        return torch.from_numpy(unpack(weight.data, bits, offset, count).reshape(weight.shape))
    nonzero = np.unpackbits(np.frombuffer(weight.mask, dtype=np.uint8), count=count).astype(bool).reshape(weight.shape)
    zero = weight.zero.astype(np.int32)
    q = np.broadcast_to(zero.reshape(-1, *([1] * (len(weight.shape) - 1))) if zero.size > 1 else zero, weight.shape).copy()
    q[nonzero] = unpack(weight.data, bits, offset, int(nonzero.sum()))
    return torch.from_numpy(q)


def save_packed(net: nn.Module, scheme: Scheme, path: Path) -> Path:
    """The network with every linear and convolution weight stored as packed `scheme.bits`-wide
    integers plus float16 scales (other tensors as float16): what a low-bit network ships as.
    `load_packed` restores a network that computes with exactly these dequantized weights."""
    net = copy.deepcopy(net).cpu()
    packed: dict[str, PackedWeight] = {}
    offset = -scheme.qmin
    for name, module in net.named_modules():
        if module in weight_layers(net):
            q, scale, zero = quantize_tensor(module.weight.detach(), scheme)
            packed[f"{name}.weight"] = _pack_weight(q, scale, zero, scheme.bits, offset)
    state = {k: v.half() for k, v in net.state_dict().items() if k not in packed and v.is_floating_point()}
    state.update({k: v for k, v in net.state_dict().items() if not v.is_floating_point()})
    for layer in weight_layers(net):  # the architecture travels without its float weights
        layer.weight = nn.Parameter(torch.empty(0), requires_grad=False)
    torch.save({"scheme": scheme, "packed": packed, "state": state, "skeleton": net}, path)
    return path


def load_packed(path: Path) -> nn.Module:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    scheme: Scheme = blob["scheme"]
    net: nn.Module = blob["skeleton"]
    modules = dict(net.named_modules())
    for key, weight in blob["packed"].items():
        q = _unpack_weight(weight, scheme.bits, -scheme.qmin)
        scale = torch.from_numpy(weight.scale.astype(np.float32))
        zero = torch.from_numpy(weight.zero.astype(np.float32))
        modules[key.rsplit(".", 1)[0]].weight = nn.Parameter(dequantize(q, scale, zero), requires_grad=False)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()}, strict=False)
    return net.eval()


def file_sizes(path: Path) -> dict[str, int]:
    """The file's bytes and its gzip-compressed bytes (what zeros and repeats cost on the wire)."""
    data = Path(path).read_bytes()
    return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}
