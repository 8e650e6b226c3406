"""Bad files and out-of-range values fail with the field or line, never a traceback or a hang:
duplicate keys, non-UTF-8 bytes, deep nesting, alias bombs, huge files, infinite numbers,
absurd epoch and trial counts, seeds NumPy cannot take."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import SpecError
from harness.study import load_spec
from harness.study.reading import MAX_EXPANDED_NODES, expanded_size, read_yaml_mapping


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "study.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def bomb(levels: int) -> str:
    text = 'name: bomb\nunknown:\n  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels):
        text += f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
    return text


@pytest.mark.parametrize(
    "content, message",
    [
        ("name: a\nname: b\n", "line 2: duplicate key 'name' (first on line 1)"),
        ("name: a\ntrain: {max_epochs: 2, max_epochs: 3}\n", "duplicate key 'max_epochs'"),
        (b"name: caf\xe9\n", "not UTF-8 text (byte 9)"),
        ("name: deep\nx: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested more than 100 levels deep"),
        (bomb(9), f"expand to more than {MAX_EXPANDED_NODES:,} values"),
        ("name: big\ndescription: " + "x" * 2_000_000 + "\n", "a study file is at most 1,000,000 bytes"),
        ("- a list\n", "a study file is a mapping of keys"),
    ],
    ids=["duplicate key", "duplicate nested key", "not utf-8", "deep nesting", "alias bomb", "huge file", "not a mapping"],
)
def test_unreadable_files_are_clear_errors(tmp_path: Path, content, message: str):
    path = write(tmp_path, content)
    start = time.monotonic()
    with pytest.raises(SpecError) as err:
        read_yaml_mapping(path, "study file")
    assert message in str(err.value) and str(path) in str(err.value)
    assert time.monotonic() - start < 2


def test_a_small_use_of_anchors_is_fine(tmp_path: Path):
    raw = read_yaml_mapping(write(tmp_path, bomb(3)), "study file")
    assert expanded_size(raw) < MAX_EXPANDED_NODES and len(raw["unknown"]["l2"]) == 9


@pytest.mark.parametrize(
    "content, message",
    [
        ("name: s\ntrain: {max_epochs: 1000000000}\n", "train.max_epochs: Input should be less than or equal to 100000"),
        ("name: s\nsearch: {num_trials: 1000000000}\n", "search.num_trials: Input should be less than or equal to 100000"),
        ("name: s\nseed: -1\n", "seed: Input should be greater than or equal to 0"),
        ("name: s\nseed: 4294967296\n", "seed: Input should be less than 4294967296"),
        ("name: s\ntrain: {optimizer: {lr: .inf}}\n", "train.optimizer.lr: Input should be a finite number"),
        (
            "name: s\nsearch: {space: {train.optimizer.lr: {loguniform: [1.0e-4, .inf]}}}\n",
            "search.space.train.optimizer.lr.loguniform.1: Input should be a finite number",
        ),
    ],
    ids=["epochs", "trials", "negative seed", "seed too large", "infinite lr", "infinite bound"],
)
def test_out_of_range_values_name_the_field(tmp_path: Path, content: str, message: str):
    with pytest.raises(SpecError) as err:
        load_spec(write(tmp_path, content))
    assert message in str(err.value)
    assert "loguniform.loguniform" not in str(err.value)  # the distribution's tag is not doubled


def test_the_cli_refuses_an_unreadable_file_in_a_moment(tmp_path: Path):
    path = write(tmp_path, bomb(9))
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path)], capture_output=True, text=True,
                         timeout=60, env={"HARNESS_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "anchors and aliases expand" in out.stderr and "Traceback" not in out.stderr
    assert time.monotonic() - start < 5  # before torch, Ray or MLflow is imported
    assert not (tmp_path / "home").exists()
