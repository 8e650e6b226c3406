"""Connecting to clusters as users start them: a head with token authentication off and one
with it on, from a driver whose home has no token, a stale one left by a local run, or the
cluster's own; a closed port fails in seconds; a study submitted as a Ray job runs on a head
whose dashboard (the job server) listens on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import HARNESS, ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # end to end: real Ray, a real MLflow server, the CLI

RAY = str(Path(sys.executable).parent / "ray")
BRANIN = {
    "name": "access",
    "objective": {"name": "branin"},
    "train": {"max_epochs": 1},
    "search": {
        "strategy": "random", "num_trials": 2, "metric": "objective/value",
        "space": {"objective.x1": {"uniform": [-5.0, 10.0]}},
    },
}


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without Ray's or the harness's settings (an earlier test's
    local Ray may have left some), with `home` as the home folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "HARNESS_"))}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """`harness ARGS` with exactly the environment `env` (not merged with this process's)."""
    return subprocess.run([*HARNESS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


class Head:
    """`ray start --head` in its own session on 127.0.0.1, stopped with its process group."""

    def __init__(self, env: dict[str, str], dashboard_port: int | None = None) -> None:
        self.port, self.env = free_port(), env
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # Ray's socket paths must stay short
        dashboard = (
            ["--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port)]
            if dashboard_port else ["--include-dashboard", "false"]
        )
        self.proc = subprocess.Popen(
            [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port), "--temp-dir",
             self.temp_dir, "--num-cpus", "2", "--num-gpus", "0", "--object-store-memory", str(100 * 1024**2),
             *dashboard, "--block"],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        probe = f"from ray._raylet import GcsClient; GcsClient(address={self.address!r})"
        while subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=60).returncode:
            assert self.proc.poll() is None and time.monotonic() < deadline, "ray head did not start"
            time.sleep(1)
        while dashboard_port and not self._answers(f"http://127.0.0.1:{dashboard_port}/api/version"):
            logs = Path(self.temp_dir) / "session_latest" / "logs" / "dashboard.log"
            assert time.monotonic() < deadline, "the job server did not start:\n" + (
                logs.read_text()[-3000:] if logs.is_file() else "no dashboard log"
            )
            time.sleep(1)

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=15)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        shutil.rmtree(self.temp_dir, ignore_errors=True)


# First in the file: the heads below are started for the tests after it, and a job server on
# top of them makes a slow start on two cores.
def test_a_study_submitted_as_a_ray_job(mlflow_server: str, tmp_path: Path):
    dashboard = free_port()
    head = Head({**clean_env(tmp_path / "head-home"), "RAY_AUTH_MODE": "disabled"}, dashboard_port=dashboard)
    try:
        work = tmp_path / "job"
        work.mkdir()
        (work / "study.yaml").write_text(yaml.safe_dump({**BRANIN, "name": "as-a-job"}))
        submit = [
            RAY, "job", "submit", "--address", f"http://127.0.0.1:{dashboard}", "--working-dir", str(work), "--",
            sys.executable, "-m", "harness.cli", "run", "study.yaml", "--address", "auto",
            "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "ray"), "--quiet",
        ]
        deadline = time.monotonic() + 120
        while True:
            job = subprocess.run(
                submit, env={**clean_env(tmp_path / "head-home"), "RAY_AUTH_MODE": "disabled"}, cwd=ROOT,
                capture_output=True, text=True, timeout=400,
            )
            # The job server answers before its agent on the node has registered: Ray says to retry.
            if "No available agent" not in job.stderr or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert job.returncode == 0 and "succeeded" in job.stdout, job.stdout[-4000:] + job.stderr[-3000:]
        assert "completed 2" in job.stdout  # the job's own output, streamed back
    finally:
        head.stop()
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("as-a-job")
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 3  # parent + 2 trials


@pytest.fixture(scope="module")
def heads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Head, str]]]:
    """A head with authentication off and one with a token (the token returned beside it)."""
    token = secrets.token_hex(32)
    off = Head({**clean_env(tmp_path_factory.mktemp("home-off")), "RAY_AUTH_MODE": "disabled"})
    on = Head({**clean_env(tmp_path_factory.mktemp("home-on")), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    try:
        yield {"off": (off, ""), "on": (on, token)}
    finally:
        off.stop()
        on.stop()


def driver_home(folder: Path, token: str | None) -> Path:
    """A home directory whose ~/.ray/auth_token holds `token` (none when None)."""
    if token is not None:
        (folder / ".ray").mkdir(parents=True)
        (folder / ".ray" / "auth_token").write_text(token)
    return folder


@pytest.mark.parametrize(
    "head, home_token, expected",
    [
        ("off", None, 0),
        ("off", "stale", 0),  # a token a local run left behind does not stop a cluster without auth
        ("on", "right", 0),
        ("on", None, "requires token authentication and this driver has no token"),
        ("on", "stale", "rejects this driver's token"),
    ],
)
def test_the_driver_authenticates_as_the_cluster_needs(
    heads, head: str, home_token: str | None, expected, mlflow_server: str, tmp_path: Path
):
    cluster, token = heads[head]
    secret = {None: None, "stale": secrets.token_hex(32), "right": token}[home_token]
    env = clean_env(driver_home(tmp_path / "home", secret))
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**BRANIN, "name": f"access-{head}-{home_token}"}))
    start = time.monotonic()
    result = run_cli(
        "run", str(study), "--address", cluster.address, "--tracking-uri", mlflow_server,
        "--storage", str(tmp_path / "ray"), "--quiet", env={**env, "HARNESS_HOME": str(tmp_path / "hh")},
    )
    if expected == 0:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "completed 2" in result.stdout
        return
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert expected in result.stderr and "ray get-auth-token" in result.stderr
    assert time.monotonic() - start < 60
    experiment = MlflowClient(mlflow_server).get_experiment_by_name(f"access-{head}-{home_token}")
    assert experiment is None  # nothing was written


def test_a_local_study_starts_its_own_ray_and_leaves_no_token(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(BRANIN))
    # The session file of a cluster that is gone: a plain `ray.init()` would attach to it and
    # retry its address for minutes; a local study starts a Ray of its own.
    session = Path("/tmp/ray/ray_current_cluster")
    kept = session.read_text() if session.is_file() else None
    session.parent.mkdir(parents=True, exist_ok=True)
    session.write_text(f"127.0.0.1:{free_port()}")
    try:
        result = run_cli(
            "run", str(study), "--quiet", env={**clean_env(home), "HARNESS_HOME": str(tmp_path / "hh")}, timeout=120
        )
    finally:
        if kept is None:
            session.unlink(missing_ok=True)
        else:
            session.write_text(kept)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not (home / ".ray").exists()
    assert "Token authentication" not in result.stderr  # Ray's notice is not shown without -v
    assert "Creating initial MLflow database tables" not in result.stderr


def test_nothing_listening_fails_in_seconds(tmp_path: Path):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(BRANIN))
    start = time.monotonic()
    env = {**clean_env(tmp_path), "HARNESS_HOME": str(tmp_path)}
    result = run_cli("run", str(study), "--address", f"127.0.0.1:{free_port()}", env=env)
    assert result.returncode == 2 and "no Ray cluster answers" in result.stderr
    assert time.monotonic() - start < 30
    result = run_cli("run", str(study), "--address", "ray://127.0.0.1:10001", env=env)
    assert result.returncode == 2 and "ray job submit" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()
