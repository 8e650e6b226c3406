"""Preprocessing steps do what they claim, are typed spec fields, and can be searched by list index."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import SpecError
from harness.study import spec_from_dict
from harness.trial.build import build
from harness.trial.training import fit_trial
from lightning_modules.data import ArrayDataModule, step_config
from lightning_modules.data.features import FftBins, RollingStats
from lightning_modules.data.outliers import HampelOutliers, IqrOutliers, ResidualOutliers, ZScoreOutliers
from lightning_modules.data.preprocessing import SplitArrays, prepare_splits
from lightning_modules.data.signal import Detrend, Downsample, MovingAverage, SavitzkyGolay

MOTOR = {"name": "motor", "num_samples": 120, "length": 64}


def series(values: np.ndarray) -> np.ndarray:
    """One univariate sequence as (1, time, 1)."""
    return values.astype(np.float32)[None, :, None]


def test_savitzky_golay_keeps_a_peak_better_than_a_moving_average():
    t = np.arange(201)
    peak = series(np.exp(-0.5 * ((t - 100) / 4.0) ** 2))  # height 1, narrow against the window
    height = {
        "savgol": SavitzkyGolay(window=15, order=4).transform(peak).max(),
        "moving_average": MovingAverage(window=15).transform(peak).max(),
    }
    assert abs(1 - height["savgol"]) < 0.05 < abs(1 - height["moving_average"])
    noisy = peak + np.random.default_rng(0).normal(0, 0.05, peak.shape).astype(np.float32)
    assert SavitzkyGolay(15, 4).transform(noisy).std() < noisy.std()  # still smooths


def test_savitzky_golay_derivative():
    t = np.linspace(0, 1, 101)
    slope = SavitzkyGolay(window=11, order=3, deriv=1).transform(series(3 * t**2))[0, 20:80, 0]
    assert np.allclose(slope, 6 * t[20:80] * (t[1] - t[0]), rtol=1e-3)  # per step


def test_hampel_catches_clustered_spikes_that_zscore_misses():
    rng = np.random.default_rng(0)
    t = np.arange(600)
    signal = 10 * np.sin(2 * np.pi * t / 600) + rng.normal(0, 0.2, t.size)
    spiky = signal.copy()
    spikes = np.concatenate([np.arange(s, s + 3) for s in (70, 220, 300, 460)])  # bursts of 3
    spiky[spikes] += 6.0  # well inside the signal's global range
    x = series(spiky)
    hampel = HampelOutliers(half_width=5, threshold=3.0).outliers(x)[0, :, 0]
    zscore = ZScoreOutliers(threshold=3.0, kind="sequence").fit(x).outliers(x)[0, :, 0]
    assert hampel[spikes].all() and hampel.sum() - len(spikes) < 0.02 * t.size  # few false alarms
    assert not zscore[spikes].any()
    cleaned = HampelOutliers(half_width=5, action="clip").transform(x)[0, :, 0]
    assert np.abs(cleaned - signal)[spikes].max() < 1.0  # replaced by the local median


def test_bound_and_residual_detectors():
    train = series(np.random.default_rng(1).normal(0, 1, 2000))
    iqr = IqrOutliers(k=1.5, kind="sequence").fit(train)
    q1, q3 = np.percentile(train, [25, 75])
    assert iqr.low_[0] == pytest.approx(q1 - 1.5 * (q3 - q1)) and iqr.high_[0] == pytest.approx(q3 + 1.5 * (q3 - q1))
    rng = np.random.default_rng(3)
    smooth = np.sin(np.linspace(0, 6, 300))
    residual = ResidualOutliers(window=21, order=2, threshold=5.0).fit(series(smooth + rng.normal(0, 0.05, 300)))
    bumped = smooth + rng.normal(0, 0.05, 300)
    bumped[150] += 1.0
    flagged = residual.outliers(series(bumped))[0, :, 0].nonzero()[0].tolist()
    assert 150 in flagged and len(flagged) <= 2
    assert abs(residual.transform(series(bumped))[0, 150, 0] - smooth[150]) < 0.15  # replaced by the model


def test_outlier_actions_clip_flag_drop_and_their_counts():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (50, 4)).astype(np.float32)
    x[3, 1] = x[7, 2] = 40.0  # two train rows with an outlier
    parts = {
        "train": SplitArrays(x, np.zeros(50, np.float32)),
        "val": SplitArrays(np.array([[0, 0, 50, 0]], np.float32), np.zeros(1, np.float32)),
        "test": SplitArrays(np.zeros((2, 4), np.float32), np.zeros(2, np.float32)),
    }
    dropped = prepare_splits([{"name": "zscore", "threshold": 4.0, "action": "drop"}], parts, "tabular")
    assert len(dropped.splits["train"].y) == 48 and len(dropped.splits["val"].y) == 1  # val is never dropped
    assert dropped.stats["data/step0_zscore/dropped_train"] == 2 and dropped.stats["data/step0_zscore/flagged_val"] == 1
    assert dropped.stats["data/train_samples"] == 48
    flagged = prepare_splits([{"name": "zscore", "threshold": 4.0, "action": "flag"}], parts, "tabular")
    assert flagged.splits["val"].x.tolist() == [[0, 0, 50, 0, 1]] and flagged.splits["train"].x[:, 4].sum() == 2
    clipped = prepare_splits([{"name": "zscore", "threshold": 4.0, "action": "clip"}], parts, "tabular")
    bound = clipped.fitted[0].high_[2]
    assert clipped.splits["val"].x[0, 2] == pytest.approx(bound) and bound < 40


def test_downsample_filters_before_it_decimates():
    t = np.arange(512)
    tone = series(np.sin(2 * np.pi * 0.02 * t))
    fast = series(np.sin(2 * np.pi * 0.4 * t))  # above the Nyquist frequency after keeping 1 in 4
    filtered = Downsample(factor=4).transform(tone + fast)
    assert filtered.shape == (1, 128, 1)
    assert np.abs(filtered - tone[:, ::4])[:, 10:-10].max() < 0.05  # the fast tone is gone
    aliased = Downsample(factor=4, antialias=False).transform(tone + fast)
    assert np.abs(aliased - tone[:, ::4]).max() > 0.5  # ... and without the filter it aliases


def test_detrend_fft_and_rolling_features():
    t = np.arange(256)
    x = series(3.0 + 0.01 * t + np.cos(2 * np.pi * 8 * t / 256))
    assert abs(Detrend("constant").transform(x).mean()) < 1e-5
    linear = Detrend("linear").transform(x)
    assert np.allclose(linear, series(np.cos(2 * np.pi * 8 * t / 256)), atol=0.02)
    # 129 frequencies in 16 bands: 0-8, 9-16, ..., so 40 cycles per window fall in band 4.
    spectrum = FftBins(bins=16).transform(series(np.cos(2 * np.pi * 40 * t / 256)))
    assert spectrum.shape == (1, 16, 1) and int(np.argmax(spectrum[0, :, 0])) == 4
    rolled = RollingStats(window=4, stats=("mean", "max")).transform(np.repeat(x, 2, axis=-1))
    assert rolled.shape == (1, 256, 6) and np.all(rolled[..., 4:] >= rolled[..., :2] - 1e-5)


def test_steps_in_the_datamodule_change_shape_and_keep_train_only_fits():
    steps = ["detrend", {"name": "hampel", "half_width": 3}, {"name": "downsample", "factor": 2},
             {"name": "park"}, {"name": "rolling", "window": 4, "stats": ["std"]}, "standardize"]
    dm = ArrayDataModule(MOTOR, "random", steps, batch_size=16)
    # 8 channels -> park: i_d, i_q, v_d, v_q, sin, cos -> rolling std doubles them; 64 steps halved
    assert dm.shape.input == (32, 12)
    x = dm.split_tensors("train")[0].numpy()
    assert np.allclose(x.reshape(-1, 12).mean(0), 0, atol=1e-4)
    assert dm.preprocessing_stats["data/step1_hampel/flagged_train"] > 0


def test_regime_bins_label_samples_from_train_edges():
    steps = [{"name": "regime_bins", "column": "temperature", "bins": 4}]
    dm = ArrayDataModule(MOTOR, "random", steps, batch_size=16)
    train_bins = dm.regime_groups("train")["temperature"]
    assert np.bincount(train_bins, minlength=4).min() >= len(train_bins) // 4 - 1  # equal counts on train
    assert dm.regime_bin_names["temperature"] == [f"temperature_bin_{i}" for i in range(4)]
    assert set(dm.regime_groups("val")) == {"temperature", "speed", "load"}  # the others: 3 default bins


@pytest.mark.parametrize(
    "step, message",
    [
        ({"name": "savgol", "window": 10}, "data.preprocessing.0.window: window must be odd (given 10)"),
        ({"name": "savgol", "window": 3, "order": 3}, "data.preprocessing.0.window: window must be larger than order"),
        ({"name": "savgol", "window": 5, "order": 2, "deriv": 3}, "data.preprocessing.0.deriv: deriv must be at most"),
        ({"name": "hampel", "action": "delete"}, "data.preprocessing.0.action: Input should be 'clip', 'flag'"),
        ({"name": "regime_bins", "column": "humidity"}, "data.preprocessing.0.column: not a regime column"),
        ({"name": "smooth"}, "data.preprocessing.0.name: unknown preprocessing step 'smooth'; known: clarke"),
        ({"name": "park", "angel": [6, 7]}, "data.preprocessing.0.angel: unknown key (given [6, 7]); allowed keys"),
    ],
)
def test_bad_steps_name_the_field(step: dict, message: str):
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "s", "data": {"dataset": MOTOR, "preprocessing": [step]}})
    assert message in str(err.value)


def test_a_signal_step_on_image_data_is_refused():
    with pytest.raises(SpecError, match="data.preprocessing.1.name: a 'savgol' step works on sequence data"):
        spec_from_dict({"name": "s", "data": {"dataset": "digits", "preprocessing": ["standardize", "savgol"]}})


def test_steps_are_searchable_by_list_index():
    base = {
        "name": "s",
        "data": {"dataset": MOTOR, "preprocessing": ["detrend", {"name": "savgol", "window": 7}, "standardize"]},
        "model": {"kind": "mlp", "hidden": [8]},
        "search": {"space": {"data.preprocessing.1.window": {"choice": [5, 9]}}},
    }
    spec = spec_from_dict(base)
    assert spec.data.preprocessing[0] == step_config("detrend")  # plain names are accepted
    assert spec.with_values({"data.preprocessing.1.window": 9}).data.preprocessing[1].window == 9
    # Switching a step keeps the keys the new step shares and drops the others.
    swapped = spec.with_values({"data.preprocessing.1.name": "moving_average"}).data.preprocessing[1]
    assert swapped == step_config({"name": "moving_average", "window": 7})
    override = spec_from_dict(base, overrides={"data.preprocessing.0.kind": "linear"})
    assert override.data.preprocessing[0].kind == "linear"
    for space, message in [
        ({"data.preprocessing.1.window": {"choice": [5, 8]}}, "value 8 is not allowed: data.preprocessing.1.window"),
        ({"data.preprocessing.3.window": {"choice": [5]}}, "names no field of the study; data.preprocessing has 3"),
        ({"data.preprocessing.1.widow": {"choice": [5]}}, "fields under data.preprocessing.1: deriv, name, order"),
    ]:
        with pytest.raises(SpecError, match=message):
            spec_from_dict({**base, "search": {"space": space}})


def test_trial_reports_validation_scores_per_regime_bin():
    spec = spec_from_dict({
        "name": "r",
        "data": {"dataset": MOTOR, "split": "random",
                 "preprocessing": [{"name": "regime_bins", "column": "temperature", "bins": 3}, "standardize"]},
        "model": {"kind": "mlp", "hidden": [8]},
        "train": {"max_epochs": 1, "batch_size": 16},
    })
    rows: list[dict] = []
    fit_trial(spec, lambda metrics, trainer: rows.append(metrics))
    counts = np.bincount(build(spec)[0].regime_groups("val")["temperature"], minlength=3)
    per_bin = [rows[0][f"val/loss/temperature_bin_{i}"] for i in range(3)]
    assert np.dot(counts, per_bin) / counts.sum() == pytest.approx(rows[0]["val/loss"], rel=1e-5)
    assert rows[0]["val/rmse/temperature_bin_2"] == pytest.approx(np.sqrt(per_bin[2]))
    for column in ("speed", "load"):  # the other regime columns get default bins
        assert any(key.startswith(f"val/loss/{column}_bin_") for key in rows[0])
    digits: list[dict] = []
    fit_trial(spec_from_dict({"name": "d", "train": {"max_epochs": 1}}), lambda m, t: digits.append(m))
    assert not [key for key in digits[0] if key.count("/") > 1 or key.startswith("data/")]
