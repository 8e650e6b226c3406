"""A study on an existing Ray cluster: a head and a worker node started with `ray start` on
loopback (separate processes, separate node ids); `harness run --address` uses both."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import HARNESS, ROOT, free_port, run_cli, write_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # end to end: real Ray, a real MLflow server, the CLI

RAY = str(Path(sys.executable).parent / "ray")
CLUSTER_PROCS: dict[str, list[subprocess.Popen]] = {}  # address -> [head, worker] of a running fixture
NODE_FLAGS = ["--num-cpus", "1", "--num-gpus", "0", "--object-store-memory", str(100 * 1024**2), "--block"]


def start_node(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # `--block` keeps each node in the foreground of its own session, so the test can stop
    # exactly its nodes (`ray stop` would stop every Ray on the machine).
    return subprocess.Popen(
        [RAY, "start", *args, *NODE_FLAGS], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def alive_nodes(address: str, env: dict[str, str]) -> int:
    # A node counts once it is alive *and* its CPU is free in the cluster's resource view:
    # `Alive` alone comes before the resources are synced, and a study started in that gap
    # places every trial on the head.
    probe = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "alive = sum(n['Alive'] for n in ray.nodes()); "
        "print(min(alive, int(ray.available_resources().get('CPU', 0))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


@pytest.fixture
def two_node_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    # A short temp dir: Ray's unix socket paths must stay under ~107 characters.
    temp_dir = tempfile.mkdtemp(prefix="rc", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    # Ray clusters started with `ray start` require a token; every node and driver shares it.
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = start_node(
        ["--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--temp-dir", temp_dir,
         "--include-dashboard", "false"],
        env,
    )
    procs = [head]
    try:
        deadline = time.monotonic() + 120
        while alive_nodes(address, env) < 1:
            assert head.poll() is None and time.monotonic() < deadline, "ray head did not start"
            time.sleep(1)
        procs.append(start_node(["--address", address, "--node-ip-address", "127.0.0.1"], env))
        while alive_nodes(address, env) < 2:
            assert procs[1].poll() is None and time.monotonic() < deadline, "ray worker did not join"
            time.sleep(1)
        CLUSTER_PROCS[address] = procs
        yield address, env
    finally:
        CLUSTER_PROCS.pop(address, None)
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_study_runs_on_both_nodes(two_node_cluster, mlflow_server: str, tmp_path: Path) -> None:
    address, env = two_node_cluster
    study = write_study(
        tmp_path,
        {
            "name": "cluster-study",
            "search": {
                "strategy": "random",
                "num_trials": 6,
                "space": {"train.optimizer.lr": {"loguniform": [0.001, 0.05]}},
            },
            # Each node has one CPU and each trial takes one: two trials run at once, one per node.
            # Trials last seconds (small batches): Ray Tune reuses a free worker for the next trial,
            # so trials shorter than the other node's worker start-up would all run on one node.
            "train": {"max_epochs": 6, "batch_size": 8, "optimizer": {"name": "adamw", "lr": 0.01}},
        },
    )
    result = run_cli(
        "run", str(study), "--address", address, "--tracking-uri", mlflow_server,
        "--storage", str(tmp_path / "ray"), "--quiet",
        env={**env, "HARNESS_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("cluster-study")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`harness.kind` = 'trial'")
    assert len(runs) == 6
    assert all(r.info.status == "FINISHED" for r in runs)
    nodes = {r.data.tags["node_id"] for r in runs}
    assert len(nodes) == 2, nodes

    # A compression study on the same cluster: the teacher, trained once as a Ray task, reaches
    # the trials on both nodes through the object store (no shared disk between them needed).
    compress = write_study(
        tmp_path,
        {
            "name": "cluster-compress",
            "search": {"strategy": "random", "num_trials": 4, "metric": "val/acc", "mode": "max",
                       "space": {"compress.steps.0.amount": {"uniform": [0.3, 0.9]}}},
            "train": {"max_epochs": 2, "batch_size": 8, "optimizer": {"name": "adamw", "lr": 0.01}},
            "compress": {"steps": [{"kind": "prune", "amount": 0.5, "finetune_epochs": 4}, {"kind": "quantize"}]},
        },
        name="compress.yaml",
    )
    result = run_cli(
        "compress", str(compress), "--address", address, "--tracking-uri", mlflow_server,
        "--storage", str(tmp_path / "ray"), "--quiet", env={**env, "HARNESS_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    experiment = client.get_experiment_by_name("cluster-compress")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`harness.kind` = 'trial'")
    assert len(runs) == 4 and all(r.info.status == "FINISHED" and "size/ratio" in r.data.metrics for r in runs)
    assert len({r.data.tags["node_id"] for r in runs}) == 2


def descendants(pid: int) -> list[int]:
    """Every process under `pid`, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def test_a_trial_lost_with_its_node_is_retried(two_node_cluster, mlflow_server: str, tmp_path: Path) -> None:
    # The worker node dies under a running trial: Ray Tune restarts that trial (from its last
    # checkpoint, here on the head), the harness names the cause on its run, and the study ends
    # with every trial FINISHED and each history without gaps or repeats.
    address, env = two_node_cluster
    name = "node-loss"
    epochs = 30  # long enough to be caught mid-way on a fast, idle machine (a few seconds)
    study = write_study(
        tmp_path,
        {
            "name": name,
            "search": {"strategy": "random", "num_trials": 2, "space": {"train.optimizer.lr": {"loguniform": [0.001, 0.05]}}},
            "train": {"max_epochs": epochs, "batch_size": 4, "checkpoint_every": 1, "optimizer": {"name": "adamw", "lr": 0.01}},
        },
    )
    cmd = [*HARNESS, "run", str(study), "--address", address, "--tracking-uri", mlflow_server, "--storage",
           str(tmp_path / "ray"), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**env, "HARNESS_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    client = MlflowClient(mlflow_server)
    worker = CLUSTER_PROCS[address][1]
    try:
        # Until both trials are mid-way, one on each node (one CPU each).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            experiment = client.get_experiment_by_name(name)
            runs = client.search_runs([experiment.experiment_id], "tags.`harness.kind` = 'trial'") if experiment else []
            if len(runs) == 2 and all(2 <= r.data.metrics.get("epoch", 0) <= epochs - 10 for r in runs):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the trials never got mid-way")
        # The whole worker node at once: `ray start`, its raylet and every process under it (the
        # trial's worker included, which would otherwise finish the trial on its own).
        for pid in [worker.pid, *descendants(worker.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:]
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], "tags.`harness.kind` = 'trial'")
    assert "lost its worker" in out and "restarts it from its last checkpoint" in out, (out, [r.data.tags for r in runs])

    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs), [r.data.tags for r in runs]
    (retried,) = [r for r in runs if "retries" in r.data.tags]
    assert retried.data.tags["retries"] == "1" and retried.data.tags["retry_cause"]
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "epoch")]
        assert steps == list(range(1, epochs + 1)), steps
