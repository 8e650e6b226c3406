"""The `compress:` section: searchable step fields, and every bad input named by its path."""

from __future__ import annotations

import pytest

from harness.errors import SpecError
from harness.run.plan import StudyPlan
from harness.study import spec_from_dict


def study(steps: list, **sections) -> dict:
    return {
        "name": "compress",
        "data": {"dataset": "digits"},
        "model": {"kind": "mlp", "hidden": [16]},
        "train": {"max_epochs": 2},
        "compress": {"teacher": "train", "steps": steps},
        **sections,
    }


def error_of(raw: dict) -> str:
    with pytest.raises(SpecError) as info:
        spec_from_dict(raw, source="test.yaml")
    return str(info.value)


PRUNE = {"kind": "prune", "amount": 0.8, "rounds": 2, "finetune_epochs": 3}
QAT = {"kind": "quantize", "method": "qat", "bits": 4, "epochs": 2}


def test_a_compression_study_plans_compression_trials_with_every_stage_epoch():
    spec = spec_from_dict(
        study([PRUNE, QAT], search={"metric": "val/acc", "mode": "max", "num_trials": 2,
                                    "space": {"compress.steps.0.rounds": {"choice": [1, 4]}}}),
        source="test.yaml",
    )
    plan = StudyPlan.of(spec)
    assert plan.kind_name == "compression"
    assert spec.compress.epochs() == 2 * 3 + 2 + 1  # fine-tuning epochs, then the measured artifact
    assert plan.max_epochs == 4 * 3 + 2 + 1  # the longest searched value
    assert plan.trial_max_epochs({"compress.steps.0.rounds": 1}) == 3 + 2 + 1
    chain = spec_from_dict(study([{"kind": "distill", "student": {"kind": "mlp", "hidden": [8]}, "epochs": 4}, PRUNE, QAT]))
    assert chain.compress.epochs() == 4 + 2 * 3 + 2 + 1
    trial = spec.with_values({"compress.steps.1.bits": 8, "compress.steps.0.amount": 0.5})
    assert trial.compress.steps[1].bits == 8 and trial.compress.steps[0].amount == 0.5


@pytest.mark.parametrize(
    "steps, sections, expected",
    [
        ([{"kind": "quantize", "bits": 3}], {}, "compress.steps.0.bits: Input should be 2, 4 or 8 (given 3)"),
        ([{"kind": "prune", "amount": 1.0}], {}, "compress.steps.0.amount: Input should be less than 1 (given 1.0)"),
        ([{"kind": "prune", "amount": -0.1}], {}, "compress.steps.0.amount"),
        ([{"kind": "quantize", "method": "qat", "epochs": 0}], {}, "compress.steps.0: quantization-aware training (method: qat) needs epochs >= 1"),
        ([{"kind": "sparsify"}], {}, "compress.steps.0.kind: a compression step; known: distill, prune, quantize (given 'sparsify')"),
        ([{"kind": "distill", "temperature": 0}], {}, "compress.steps.0.temperature: Input should be greater than 0"),
        ([{"kind": "distill", "alpha": 1.5}], {}, "compress.steps.0.alpha: Input should be less than or equal to 1"),
        ([{"kind": "distill", "student": {"kind": "lstm"}}], {}, "compress.steps.0.student.kind: a model that reads image data"),
        ([{"kind": "distill", "hint_weight": 1.0, "hint_layer": 3}], {},
         "compress.steps.0.hint_layer: an index into the teacher's 1 hidden layers (-1 to 0) (given 3)"),
        ([{"kind": "distill", "student": {"kind": "cnn"}}, {"kind": "prune", "structure": "structured", "scope": "layer"}], {},
         "compress.steps.1.structure: structured pruning removes hidden neurons of an mlp; a 'cnn' model"),
        ([{"kind": "distill", "student": {"kind": "mlp", "hidden": [8]}}, {"kind": "prune", "ticket": "rewind", "finetune_epochs": 1}],
         {}, "compress.steps.1.ticket: rewinding needs the initial weights"),
        ([{"kind": "quantize"}, PRUNE], {}, "compress.steps.0.kind: quantization comes after every step that trains"),
        ([{"kind": "quantize", "bits": 4, "activations": True}], {}, "activations are quantized at 8 bits only"),
        ([{"kind": "prune", "structure": "structured", "scope": "layer"}], {"model": {"kind": "cnn"}},
         "compress.steps.0.structure: structured pruning removes hidden neurons of an mlp; a 'cnn' model"),
        ([{"kind": "prune", "structure": "structured", "scope": "global"}], {}, "scope: layer"),
        ([{"kind": "prune", "ticket": "rewind"}], {}, "finetune_epochs must be >= 1"),
        ([{"kind": "prune", "ticket": "rewind", "finetune_epochs": 1}], {"compress": None}, None),
        ([{"kind": "quantize"}], {"model": {"kind": "lstm"}, "data": {"dataset": "forecast"}}, "compress.steps.0.kind: quantize handles mlp, cnn networks"),
        ([], {}, "compress.steps"),
    ],
)
def test_bad_compression_input_names_the_field(steps, sections, expected):
    raw = study(steps, **{k: v for k, v in sections.items() if k != "compress"})
    if "compress" in sections:  # a teacher run: rewinding has no initial weights
        raw["compress"]["teacher"] = {"run": "0" * 32}
        expected = "compress.steps.0.ticket: rewinding needs the initial weights"
    assert expected in error_of(raw)


def test_teacher_run_must_look_like_a_run_id():
    raw = study([{"kind": "quantize"}])
    raw["compress"]["teacher"] = {"run": "not-a-run"}
    assert "compress.teacher" in error_of(raw)


MULTI = {"strategy": "nsga2", "num_trials": 4, "objectives": [{"metric": "val/acc", "mode": "max"}, {"metric": "size/bytes", "mode": "min"}],
         "space": {"compress.steps.0.amount": {"uniform": [0.1, 0.9]}}}


def test_objectives_make_the_first_one_the_metric():
    spec = spec_from_dict(study([{"kind": "prune"}], search={**MULTI, "constraints": ["val/acc >= 0.9"]}))
    assert (spec.search.metric, spec.search.mode) == ("val/acc", "max")
    assert str(spec.search.constraints[0]) == "val/acc >= 0.9" and spec.search.constraints[0].holds(0.95)
    plain = spec_from_dict(study([{"kind": "prune"}]))
    assert "objectives" not in plain.to_dict()["search"]  # single-objective dumps (and hashes) unchanged


@pytest.mark.parametrize(
    "search, sections, expected",
    [
        ({**MULTI, "objectives": MULTI["objectives"][:1]}, {}, "search.objectives: List should have at least 2 items"),
        ({**MULTI, "strategy": "tpe"}, {},
         "search.strategy: the tpe searcher optimizes one metric; with several objectives use one of: grid, mogp, motpe, nsga2, random"),
        ({**MULTI, "strategy": "asha"}, {}, "search.strategy: the asha scheduler ranks trials by one metric"),
        ({**MULTI, "constraints": ["accuracy >= 0.9"]}, {}, "search.constraints.0.metric"),
        ({**MULTI, "constraints": ["val/acc > 0.9"]}, {}, "expected 'METRIC >= NUMBER' or 'METRIC <= NUMBER'"),
        ({**MULTI, "reference": {"latency/ms": 1.0}}, {}, "search.reference.latency/ms: one of the objectives"),
        ({**MULTI, "objectives": [{"metric": "val/acc", "mode": "max"}, {"metric": "size/bytes", "mode": "min"}]},
         {"compress": None}, "search.objectives.1.metric: a metric this study's trials report"),
        ({"metric": "latency/ms", "mode": "min"}, {"compress": None}, "search.metric: a metric this study's trials report"),
    ],
)
def test_bad_multi_objective_input_names_the_field(search, sections, expected):
    raw = study([{"kind": "prune"}], search=search)
    if "compress" in sections:
        raw.pop("compress")
        raw["search"].pop("space", None)
    assert expected in error_of(raw)


def test_harness_compress_refuses_a_study_without_a_compress_section(tmp_path, capsys):
    from harness.cli import main

    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\nmodel: {kind: mlp, hidden: [8]}\ntrain: {max_epochs: 1}\n")
    assert main(["compress", str(path), "--storage", str(tmp_path / "ray")]) == 2
    assert "no `compress:` section" in capsys.readouterr().err
    assert not (tmp_path / "ray").exists()
