"""The shipped artifact: each step shrinks the bytes it should, the artifact computes what the
student computes, and latency is measured for teacher and student in one process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_modules.compression.artifact import load_packed
from lightning_modules.compression.deploy import deploy, measure
from lightning_modules.compression.latency import latencies_ms
from lightning_modules.compression.steps import Context, PruneConfig, QuantizeConfig, compress

NO_TRAINING = Context(finetune=lambda *args: None)


@pytest.fixture(scope="module")
def teacher() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)).eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(256, 64, generator=torch.Generator().manual_seed(1))


def shipped(teacher: nn.Module, steps: list, x: torch.Tensor, folder: Path) -> tuple:
    student = compress(teacher, steps, NO_TRAINING)
    deployed = deploy(student, x[:8], x, folder)
    return student, deployed, measure(teacher, student, deployed, x[:8], folder, batch=32)


def test_int8_is_about_four_times_smaller_and_agrees(teacher, x, tmp_path: Path) -> None:
    for activations in (False, True):
        _, deployed, metrics = shipped(teacher, [QuantizeConfig(activations=activations)], x, tmp_path / str(activations))
        assert deployed.runtime == "onnxruntime"
        # int8 weights; float biases, scales and the graph cost a few kB (this net is 17k weights)
        assert 2.5 < metrics["size/ratio"] < 4.0
        agree = (deployed.outputs(x).argmax(1) == teacher(x).argmax(1)).float().mean()
        assert agree > 0.9
        assert metrics["latency/ms"] > 0 and metrics["latency/teacher_ms"] > 0 and metrics["latency/speedup_batch"] > 0


@pytest.mark.parametrize("bits", [4, 2])
def test_low_bit_ships_packed_and_runs_its_dequantized_weights(bits: int, teacher, x, tmp_path: Path) -> None:
    student, deployed, metrics = shipped(teacher, [QuantizeConfig(bits=bits)], x, tmp_path)
    assert deployed.runtime == "pytorch" and "latency/ms" not in metrics  # no kernel: not timed
    assert metrics["size/ratio"] > 8 / bits * 0.8
    net = load_packed(deployed.path)
    assert torch.allclose(net(x), deployed.outputs(x))
    assert not torch.allclose(net(x), teacher(x))  # the weights really are quantized


def test_pruning_stores_sparse_weights_where_it_pays(teacher, x, tmp_path: Path) -> None:
    _, _, half = shipped(teacher, [PruneConfig(amount=0.5)], x, tmp_path / "half")
    _, deployed, most = shipped(teacher, [PruneConfig(amount=0.9)], x, tmp_path / "most")
    assert half["sparsity"] == pytest.approx(0.5, abs=0.01) and most["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert half["size/ratio"] == pytest.approx(1.0, abs=0.05)  # at 50% a sparse layout costs more: dense
    assert most["size/ratio"] > 2.5
    assert most["params/nonzero"] < most["params/total"] * 0.15
    student = compress(teacher, [PruneConfig(amount=0.9)], NO_TRAINING)
    assert torch.allclose(deployed.outputs(x), student.net(x), atol=1e-5)


def test_structured_pruning_ships_a_smaller_network(teacher, x, tmp_path: Path) -> None:
    student, deployed, metrics = shipped(teacher, [PruneConfig(structure="structured", scope="layer", amount=0.5)], x, tmp_path)
    assert student.net[1].out_features == 64 and student.net[3].out_features == 32
    assert metrics["size/ratio"] > 1.8 and metrics["sparsity"] == 0.0
    assert torch.allclose(deployed.outputs(x), student.net(x), atol=1e-5)


def test_latency_is_measured_side_by_side(teacher, x, tmp_path: Path) -> None:
    from lightning_modules.compression.artifact import export_onnx

    paths = [export_onnx(teacher, x[:2], tmp_path / "a.onnx"), export_onnx(teacher, x[:2], tmp_path / "b.onnx")]
    first, second = latencies_ms(paths, x.numpy(), 64, repeats=20)
    assert first > 0 and second > 0
    assert 0.2 < first / second < 5  # the same network, timed in the same rounds


def test_pruned_low_bit_weights_ship_as_a_bitmap_and_their_non_zeros(teacher, x, tmp_path: Path) -> None:
    dense_student, dense, dense_metrics = shipped(teacher, [QuantizeConfig(bits=4)], x, tmp_path / "dense")
    student, sparse, metrics = shipped(teacher, [PruneConfig(amount=0.9), QuantizeConfig(bits=4)], x, tmp_path / "sparse")
    # 90% zeros: a bit per weight plus 4 bits per survivor, against 4 bits per weight.
    assert metrics["size/bytes"] < dense_metrics["size/bytes"] * 0.6
    net = load_packed(sparse.path)
    assert weight_sparsity_of(net) >= 0.9
    assert torch.allclose(net(x), sparse.outputs(x))


def weight_sparsity_of(net: nn.Module) -> float:
    from lightning_modules.compression.steps import weight_sparsity

    return weight_sparsity(net)


def test_pruned_int8_network_quantizes_and_stores_sparse(teacher, x, tmp_path: Path) -> None:
    student, deployed, metrics = shipped(teacher, [PruneConfig(amount=0.95), QuantizeConfig(bits=8)], x, tmp_path)
    _, _, int8 = shipped(teacher, [QuantizeConfig(bits=8)], x, tmp_path / "dense")
    assert metrics["size/bytes"] < int8["size/bytes"] * 0.8  # 95% zeros: int8 values + int64 indices pay
    assert (deployed.outputs(x).argmax(1) == student.net(x).argmax(1)).float().mean() > 0.9
