"""Real time series that ship with packages: UCR/UEA classification sets and statsmodels' series.

UCR/UEA sets are read from `.ts` files: the copies bundled in this package (`data/ucr/`, taken
from aeon 1.6.0, BSD-3-Clause) and, when aeon is installed, every set aeon bundles. aeon itself
is never imported: its pinned pandas and numba versions conflict with this project's, and its
data files are all that is needed.
"""

from __future__ import annotations

import functools
import gzip
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from lightning_modules.config import Config
from lightning_modules.data.datasets import DATASETS, ArrayDataset, DatasetEntry

BUNDLED_UCR = Path(__file__).with_name("ucr")


def _aeon_data_folder() -> Path | None:
    try:
        folder = Path(str(metadata.distribution("aeon").locate_file("aeon/datasets/data")))
    except metadata.PackageNotFoundError:
        return None
    return folder if folder.is_dir() else None


@functools.lru_cache(maxsize=1)
def ucr_files() -> dict[str, tuple[Path, Path]]:
    """Available UCR/UEA classification sets: name -> (train file, test file)."""
    found: dict[str, tuple[Path, Path]] = {}
    aeon = _aeon_data_folder()
    if aeon is not None:
        for train in aeon.glob("*/*_TRAIN.ts"):
            name = train.name.removesuffix("_TRAIN.ts")
            test = train.with_name(f"{name}_TEST.ts")
            if test.is_file() and train.parent.name == name and _is_classification(train):
                found[name] = (train, test)
    for train in BUNDLED_UCR.glob("*_TRAIN.ts.gz"):
        name = train.name.removesuffix("_TRAIN.ts.gz")
        found.setdefault(name, (train, train.with_name(f"{name}_TEST.ts.gz")))
    return dict(sorted(found.items()))


def _open(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        return handle.read().splitlines()


def _is_classification(path: Path) -> bool:
    for line in _open(path):
        if line.lower().startswith("@classlabel"):
            return line.split()[1].lower() == "true"
        if line.lower().startswith("@data"):
            break
    return False


def read_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """Series (each (time, channels)) and class labels of one `.ts` file.

    A data line holds one series per channel, separated by `:`, values by `,`; the class label
    comes last. Missing values (`?`) are read as NaN.
    """
    series, labels, in_data = [], [], False
    for line in _open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *channels, label = line.split(":")
        columns = [np.array([float(v) if v != "?" else np.nan for v in c.split(",")]) for c in channels]
        length = min(len(c) for c in columns)  # channels of one series have one length
        series.append(np.stack([c[:length] for c in columns], axis=-1))
        labels.append(label.strip())
    return series, labels


def pad_series(series: list[np.ndarray]) -> np.ndarray:
    """Stack series of unequal length into (n, longest, channels), each padded at its end with its
    last value (a held signal, not a jump to zero); NaNs are filled from the previous value."""
    longest = max(len(s) for s in series)
    out = np.empty((len(series), longest, series[0].shape[1]), np.float32)
    for i, s in enumerate(series):
        s = _fill_nan(s)
        out[i, : len(s)] = s
        out[i, len(s) :] = s[-1]
    return out


def _fill_nan(s: np.ndarray) -> np.ndarray:
    if not np.isnan(s).any():
        return s
    s = s.copy()
    for c in range(s.shape[1]):
        col, ok = s[:, c], ~np.isnan(s[:, c])
        col[~ok] = np.interp(np.flatnonzero(~ok), np.flatnonzero(ok), col[ok]) if ok.any() else 0.0
    return s


class UcrConfig(Config):
    """A UCR/UEA classification set, its archive train and test parts pooled (this harness splits)."""

    name: Literal["ucr"] = "ucr"
    dataset: str = Field("ItalyPowerDemand", description="the set's name, e.g. JapaneseVowels, BasicMotions")

    @field_validator("dataset")
    @classmethod
    def _available(cls, name: str) -> str:
        if name not in ucr_files():
            raise ValueError(f"not a UCR/UEA dataset available here; available: {', '.join(ucr_files())}")
        return name


def load_ucr(cfg: UcrConfig, seed: int = 0) -> ArrayDataset:
    """x (n, time, channels) float32, y int64 class indices in the order of the sorted labels.

    Sets whose series differ in length (JapaneseVowels: 7-29 steps) are padded to the longest.
    The archive's own train/test division is not kept: the study's split decides.
    """
    train, test = ucr_files()[cfg.dataset]
    series, labels = read_ts(train)
    more_series, more_labels = read_ts(test)
    classes = sorted(set(labels + more_labels), key=_label_key)
    index = {label: i for i, label in enumerate(classes)}
    return ArrayDataset(
        x=pad_series(series + more_series),
        y=np.array([index[label] for label in labels + more_labels], np.int64),
        task="classification",
        kind="sequence",
        num_classes=len(classes),
    )


def _label_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


# --- statsmodels' bundled series, windowed for forecasting --------------------------------

SERIES = ("co2", "sunspots", "elnino", "nile", "realgdp")


@functools.lru_cache(maxsize=8)
def statsmodels_series(name: str) -> np.ndarray:
    """One of statsmodels' bundled series as float64, in time order, gaps interpolated (read-only:
    cached, since specs check window sizes against it)."""
    from statsmodels import datasets

    if name == "co2":  # weekly Mauna Loa CO2 (ppm), 1958-2001, 59 missing weeks
        values = datasets.co2.load_pandas().data["co2"].interpolate(limit_direction="both").to_numpy()
    elif name == "sunspots":  # yearly sunspot activity, 1700-2008
        values = datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    elif name == "elnino":  # monthly sea surface temperature (degrees C), 1950-2010
        values = datasets.elnino.load_pandas().data.drop(columns="YEAR").to_numpy().ravel()
    elif name == "nile":  # yearly Nile flow volume, 1871-1970
        values = datasets.nile.load_pandas().data["volume"].to_numpy()
    else:  # quarterly US real GDP, 1959-2009
        values = datasets.macrodata.load_pandas().data["realgdp"].to_numpy()
    out = np.array(values, np.float64)
    out.flags.writeable = False
    return out


class ForecastConfig(Config):
    """Forecasting one of statsmodels' series: from `lookback` past values, the value `horizon`
    steps after the last one."""

    name: Literal["forecast"] = "forecast"
    series: Literal[SERIES] = "sunspots"  # type: ignore[valid-type]
    lookback: int = Field(24, ge=1, description="past values in each input window")
    horizon: int = Field(1, ge=1, description="steps ahead of the window's last value")
    difference: bool = Field(False, description="forecast the change from the window's last value instead")

    @model_validator(mode="after")
    def _windows_fit(self) -> ForecastConfig:
        length = len(statsmodels_series(self.series))
        if self.lookback + self.horizon > length - 10:
            raise ValueError(
                f"lookback + horizon ({self.lookback + self.horizon}) leaves fewer than 10 windows "
                f"in {self.series} ({length} values)"
            )
        return self


def load_forecast(cfg: ForecastConfig, seed: int = 0) -> ArrayDataset:
    """Sliding windows over the series: x (n, lookback, 1), y (n,), `time` the index of the
    target value. Neighbouring windows overlap: a shuffled split leaks; split chronologically,
    with a `gap` of at least lookback + horizon - 1 to keep val windows out of train's span."""
    values = statsmodels_series(cfg.series)
    n = len(values) - cfg.lookback - cfg.horizon + 1
    starts = np.arange(n)
    windows = values[starts[:, None] + np.arange(cfg.lookback)]
    target_at = starts + cfg.lookback + cfg.horizon - 1
    y = values[target_at] - (windows[:, -1] if cfg.difference else 0.0)
    return ArrayDataset(
        x=windows[..., None].astype(np.float32),
        y=y.astype(np.float32),
        task="regression",
        kind="sequence",
        time=target_at.astype(np.float64),
    )


DATASETS.register("ucr")(DatasetEntry(UcrConfig, load_ucr, kind="sequence", shorthand="dataset"))
DATASETS.register("forecast")(DatasetEntry(ForecastConfig, load_forecast, kind="sequence", shorthand="series"))
