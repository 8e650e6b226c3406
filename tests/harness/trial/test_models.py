"""Every registered model: trains on tiny real data, gives each head's output shape, and rejects
impossible settings at validation with the field's path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.errors import SpecError
from harness.study import StudySpec, spec_from_dict
from lightning_modules.data import ArrayDataModule, DataShape, SplitConfig
from lightning_modules.models import MODELS, SupervisedModule, build_network
from lightning_modules.models.polynomial import PolynomialConfig, PolynomialFeatures
from lightning_modules.optim import OptimizerConfig, ScheduleConfig
from tests.conftest import write_study

SEQUENCE_MODELS = ["rnn", "lstm", "gru", "transformer"]
TINY_DATA = {
    "digits": "digits",
    "adding": {"name": "adding", "length": 12, "num_samples": 300},
    "copy": {"name": "copy", "length": 9, "symbols": 2, "alphabet": 3, "num_samples": 300},
}
SMALL = {"transformer": {"hidden_size": 16, "heads": 2}, "cnn": {"channels": [8]}, "polynomial": {"degree": 2}}


def config(kind: str, **settings):
    return MODELS.get(kind).config(kind=kind, **{**SMALL.get(kind, {}), **settings})


def module_for(kind: str, shape: DataShape, task: str, **settings) -> SupervisedModule:
    net = build_network(config(kind, **settings), shape)
    return SupervisedModule(net, task, OptimizerConfig(), ScheduleConfig(), max_epochs=1, steps_per_epoch=1)


@pytest.fixture(scope="module")
def datamodules() -> dict[str, ArrayDataModule]:
    return {
        name: ArrayDataModule(data, SplitConfig(kind="random"), ["standardize"], 64) for name, data in TINY_DATA.items()
    }


def test_every_model_is_covered():
    assert set(MODELS.names()) == {"mlp", "polynomial", "cnn", *SEQUENCE_MODELS}


@pytest.mark.parametrize(
    "kind, dataset",
    [
        ("mlp", "digits"),
        ("mlp", "copy"),
        ("polynomial", "digits"),
        ("cnn", "digits"),
        *[(kind, "adding") for kind in SEQUENCE_MODELS],
        *[(kind, "copy") for kind in SEQUENCE_MODELS],
    ],
)
def test_model_trains_and_its_loss_goes_down(kind: str, dataset: str, datamodules: dict[str, ArrayDataModule]):
    dm = datamodules[dataset]
    torch.manual_seed(0)
    module = module_for(kind, dm.shape, dm.task)
    x, y = (t[:128] for t in dm.split_tensors("train"))
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    module.train()
    before = module.loss_and_outputs((x, y))[0].item()
    for _ in range(20):
        optimizer.zero_grad()
        module.loss_and_outputs((x, y))[0].backward()
        optimizer.step()
    after = module.loss_and_outputs((x, y))[0].item()
    assert after < 0.8 * before, f"{kind} on {dataset}: loss {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("kind", SEQUENCE_MODELS)
@pytest.mark.parametrize(
    "settings",
    [{"pool": "last"}, {"pool": "mean"}, {"layers": 2, "dropout": 0.2}],
    ids=["last", "mean", "two-layers"],
)
def test_sequence_heads_shapes(kind: str, settings: dict):
    x = torch.randn(5, 7, 3)
    one = DataShape("sequence", (7, 3), num_outputs=4)
    per_step = DataShape("sequence", (7, 3), num_outputs=4, per_step=True)
    assert module_for(kind, one, "classification", **settings)(x).shape == (5, 4)
    assert module_for(kind, per_step, "classification", **settings)(x).shape == (5, 7, 4)
    assert module_for(kind, DataShape("sequence", (7, 3), 1), "regression", **settings)(x).shape == (5,)
    per_step_values = DataShape("sequence", (7, 3), 1, per_step=True)
    assert module_for(kind, per_step_values, "regression", **settings)(x).shape == (5, 7)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_recurrent_bidirectional_heads(kind: str):
    x = torch.randn(4, 6, 2)
    assert module_for(kind, DataShape("sequence", (6, 2), 3), "classification", bidirectional=True)(x).shape == (4, 3)
    per_step = DataShape("sequence", (6, 2), 3, per_step=True)
    assert module_for(kind, per_step, "classification", bidirectional=True)(x).shape == (4, 6, 3)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_last_state_and_mean_pooling_read_the_right_steps(kind: str):
    x = torch.randn(4, 6, 2)
    net = build_network(config(kind, hidden_size=5, bidirectional=True), DataShape("sequence", (6, 2), 3)).eval()
    states, _ = net.rnn(x)
    # Forward direction ends at the last step, the backward one at the first.
    last = torch.cat([states[:, -1, :5], states[:, 0, 5:]], dim=-1)
    assert torch.allclose(net(x), net.head.linear(last), atol=1e-6)
    net = build_network(config(kind, hidden_size=5, pool="mean"), DataShape("sequence", (6, 2), 3)).eval()
    assert torch.allclose(net(x), net.head.linear(net.rnn(x)[0].mean(1)), atol=1e-6)


def test_lstm_starts_with_open_forget_gates():
    net = build_network(config("lstm", hidden_size=4, layers=2), DataShape("sequence", (5, 2), 1))
    for layer in range(2):
        assert torch.equal(getattr(net.rnn, f"bias_ih_l{layer}")[4:8], torch.ones(4))
        assert torch.equal(getattr(net.rnn, f"bias_hh_l{layer}")[4:8], torch.zeros(4))


@pytest.mark.parametrize(
    "kind, shape",
    [
        ("mlp", DataShape("tabular", (6,), 10)),
        ("mlp", DataShape("image", (1, 8, 8), 10)),
        ("polynomial", DataShape("tabular", (6,), 10)),
        ("cnn", DataShape("image", (1, 8, 8), 10)),
        ("cnn", DataShape("image", (1, 28, 28), 10)),
        ("cnn", DataShape("image", (3, 5, 5), 10)),
    ],
)
def test_flat_and_image_heads_shapes(kind: str, shape: DataShape):
    x = torch.randn(3, *shape.input)
    assert module_for(kind, shape, "classification")(x).shape == (3, 10)
    regression = DataShape(shape.kind, shape.input, 1)
    assert module_for(kind, regression, "regression")(x).shape == (3,)


def test_mlp_reads_a_whole_sequence_and_answers_every_step():
    shape = DataShape("sequence", (7, 3), 4, per_step=True)
    assert module_for("mlp", shape, "classification")(torch.randn(5, 7, 3)).shape == (5, 7, 4)


@pytest.mark.parametrize("norm, layer", [("batch", torch.nn.BatchNorm1d), ("layer", torch.nn.LayerNorm)])
def test_mlp_norm_and_depth(norm: str, layer: type):
    net = build_network(config("mlp", hidden=[8, 8, 8], norm=norm, activation="tanh"), DataShape("tabular", (4,), 2))
    assert sum(isinstance(m, layer) for m in net.modules()) == 3
    assert sum(isinstance(m, torch.nn.Tanh) for m in net.modules()) == 3


def test_polynomial_features():
    x = torch.tensor([[2.0, 3.0]])
    assert PolynomialFeatures(2, 2, interactions=False)(x).tolist() == [[2.0, 3.0, 4.0, 9.0]]
    assert PolynomialFeatures(2, 2, interactions=True)(x).tolist() == [[2.0, 3.0, 4.0, 6.0, 9.0]]
    assert PolynomialFeatures(2, 0, interactions=True)(x).shape == (1, 0)


def fit_polynomial(degree: int, x: torch.Tensor, y: torch.Tensor, steps: int = 300) -> tuple[float, SupervisedModule]:
    module = module_for("polynomial", DataShape("tabular", (1,), 1), "regression", degree=degree)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        module.loss_and_outputs((x, y))[0].backward()
        optimizer.step()
    return module.loss_and_outputs((x, y))[0].item(), module


def test_polynomial_degree_is_the_capacity_knob():
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    y = (x**3 - 0.5 * x).squeeze(1)
    constant, module = fit_polynomial(0, x, y)
    assert torch.allclose(module(x), module(x[:1]).expand(64))  # degree 0: one value for every input
    linear, _ = fit_polynomial(1, x, y)
    cubic, _ = fit_polynomial(3, x, y)
    assert cubic < 0.1 * linear and linear < constant


def test_polynomial_refuses_too_many_terms():
    with pytest.raises(ValueError, match="makes .* terms"):
        build_network(PolynomialConfig(degree=4, interactions=True), DataShape("image", (1, 28, 28), 10))


def test_sequence_model_cannot_be_built_for_images():
    with pytest.raises(ValueError, match="needs sequence data, given image data"):
        build_network(config("rnn"), DataShape("image", (1, 8, 8), 10))


# --- validation through the spec ---------------------------------------------------------


def error_of(raw: dict) -> str:
    with pytest.raises(SpecError) as info:
        spec_from_dict({"name": "s", **raw})
    return str(info.value)


def test_rnn_on_digits_fails_naming_model_kind():
    message = error_of({"model": {"kind": "rnn"}})
    assert "model.kind: a 'rnn' model cannot read image data (data.dataset is 'digits')" in message
    assert "models for image data: cnn, mlp, polynomial" in message
    message = error_of({"search": {"space": {"model.kind": {"choice": ["mlp", "lstm"]}}}})
    assert "search.space.model.kind: value 'lstm' is not allowed: model.kind: a 'lstm' model cannot read" in message
    assert "model.kind: a 'cnn' model cannot read sequence data" in error_of(
        {"data": {"dataset": "adding"}, "model": {"kind": "cnn"}}
    )


def test_rnn_on_digits_exits_2_through_the_cli(tmp_path: Path, capsys):
    study = write_study(tmp_path, {"name": "rnn-on-digits"})
    assert main(["validate", str(study), "--set", "model.kind=rnn"]) == 2
    assert "model.kind: a 'rnn' model cannot read image data" in capsys.readouterr().err
    assert main(["validate", str(study), "--set", "data.dataset=adding", "--set", "model.kind=rnn"]) == 2
    assert "search.space.model.hidden: names no field of the study" in capsys.readouterr().err


def test_polynomial_degree_below_zero_fails():
    message = error_of({"model": {"kind": "polynomial", "degree": -1}})
    assert "model.degree: Input should be greater than or equal to 0 (given -1)" in message


@pytest.mark.parametrize("kind", ["mlp", "cnn", *SEQUENCE_MODELS])
@pytest.mark.parametrize("dropout", [1.0, -0.1])
def test_dropout_outside_zero_one_fails(kind: str, dropout: float):
    dataset = "adding" if kind in SEQUENCE_MODELS else "digits"
    message = error_of({"data": {"dataset": dataset}, "model": {"kind": kind, "dropout": dropout}})
    assert (
        f"model.dropout: Input should be {'less than 1' if dropout == 1 else 'greater than or equal to 0'}" in message
    )
    assert f"(given {dropout})" in message


def test_transformer_heads_must_divide_the_width():
    message = error_of({"data": {"dataset": "adding"}, "model": {"kind": "transformer", "hidden_size": 30, "heads": 4}})
    assert "model: hidden_size (30) must be divisible by heads (4)" in message


def test_searching_model_kind_keeps_shared_settings():
    spec = spec_from_dict(
        {
            "name": "s",
            "data": {"dataset": "adding"},
            "model": {"kind": "lstm", "hidden_size": 16, "bidirectional": True},
            "search": {"space": {"model.kind": {"choice": ["rnn", "lstm", "gru", "transformer", "mlp"]}}},
        }
    )
    gru = spec.with_values({"model.kind": "gru"}).model
    assert gru.kind == "gru" and gru.hidden_size == 16 and gru.bidirectional
    transformer = spec.with_values({"model.kind": "transformer"}).model
    assert transformer.kind == "transformer" and transformer.hidden_size == 16  # bidirectional dropped
    assert spec.with_values({"model.kind": "mlp"}).model == MODELS.get("mlp").config()


def test_dataset_settings_round_trip_and_are_searchable():
    spec = spec_from_dict(
        {
            "name": "s",
            "data": {"dataset": "adding"},
            "model": {"kind": "lstm"},
            "search": {"strategy": "grid", "space": {"data.dataset.length": {"grid": [10, 100]}}},
        }
    )
    assert spec.to_dict()["data"]["dataset"] == {"name": "adding", "length": 50, "num_samples": 2000}
    again = StudySpec.model_validate(spec.to_dict())
    assert again == spec and again.spec_hash() == spec.spec_hash()
    assert spec.with_values({"data.dataset.length": 100}).data.dataset.length == 100
    copy = spec.with_values({"data.dataset.name": "copy"}).data.dataset
    assert copy.name == "copy" and copy.length == 50 and copy.symbols == 5  # shared keys kept
    message = error_of(
        {
            "data": {"dataset": "adding"},
            "model": {"kind": "lstm"},
            "search": {"space": {"data.dataset.length": {"choice": [1, 100]}}},
        }
    )
    assert "search.space.data.dataset.length: value 1 is not allowed" in message
