"""The study page's complexity curve and reliability diagram, from hand-made trial rows."""

from __future__ import annotations

from dashboards.study_data import StudyData, TrialRow
from dashboards.study_page import capacity_axis, reliability_rows, study_page
from harness.tracking import contract as c


def row(trial: str, params: dict, metrics: dict, status: str = c.FINISHED) -> TrialRow:
    return TrialRow(trial, f"run{trial}", status, "", params, metrics, [(1, metrics.get("val/loss", 1.0))], 0, 1)


def study(trials: list[TrialRow], test: dict | None = None) -> StudyData:
    return StudyData("e", "r" * 32, "cap", "", c.FINISHED, "val/loss", "min", trials, test=test or {}, best_trial_id=trials[0].trial_id)


def test_the_one_varied_numeric_parameter_is_the_axis_in_ascending_order() -> None:
    trials = [row(str(d), {"model.degree": str(d), "seed": "0"}, {"val/loss": 1.0 / (d + 1)}) for d in (10, 2, 0, 5)]
    assert capacity_axis(study(trials)) == ("model.degree", [0, 2, 5, 10])
    widths = [row(str(i), {"model.hidden": str(w)}, {"val/loss": 1.0}) for i, w in enumerate(([64], [4], [16]))]
    assert capacity_axis(study(widths)) == ("model.hidden", [[4], [16], [64]])
    pipelines = [row(str(i), {"data.preprocessing.1": str({"name": n})}, {"val/loss": 1.0}) for i, n in enumerate("abc")]
    assert capacity_axis(study(pipelines)) is None  # not a complexity axis
    two = [row(str(i), {"a": str(i), "b": str(-i)}, {"val/loss": 1.0}) for i in range(3)]
    assert capacity_axis(study(two)) is None


def test_the_page_draws_the_curve_and_names_both_sweet_spots() -> None:
    def terms(degree: int) -> dict:
        bias2, variance = 0.5 / (1 + degree), 0.01 * degree
        return {"train/loss": 0.5 / (1 + degree), "val/loss": bias2 + variance + 0.1, "bv/bias2": bias2,
                "bv/variance": variance, "bv/noise": 0.09, "bv/expected_error": bias2 + variance + 0.09}

    trials = [row(str(d), {"model.degree": str(d)}, terms(d)) for d in (0, 2, 6, 12)]
    page = study_page(study(trials))
    assert "Error against capacity" in page
    assert "validation sweet spot: model.degree = 6" in page and "true sweet spot: model.degree = 6" in page


def test_reliability_rows_come_from_the_test_metrics() -> None:
    test = {"test/ece": 0.03, "test/reliability/bin_93/accuracy": 0.99, "test/reliability/bin_93/confidence": 0.97,
            "test/reliability/bin_93/share": 0.9, "test/reliability/bin_60/accuracy": 0.5,
            "test/reliability/bin_60/confidence": 0.64, "test/reliability/bin_60/share": 0.1, "test/loss/x_bin_0": 1.0}
    rows = reliability_rows(test)
    assert [r["bin"] for r in rows] == ["bin_60", "bin_93"] and rows[1]["accuracy"] == 0.99
    page = study_page(study([row("a", {"x": "1"}, {"val/loss": 0.1})], test))
    assert "Calibration of the chosen trial" in page and "expected calibration error 0.0300" in page


def test_without_a_decomposition_the_curve_is_named_by_its_parameter() -> None:
    trials = [row(str(i), {"train.regularization.l2": str(v)}, {"train/loss": v, "val/loss": 0.2 - v})
              for i, v in enumerate((0.0, 0.01, 0.1))]
    page = study_page(study(trials))
    assert "Final train and validation error against train.regularization.l2" in page
    assert "lowest validation error: train.regularization.l2 = 0.1" in page and "sweet spot" not in page
