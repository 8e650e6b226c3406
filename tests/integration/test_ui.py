"""`harness ui` serves the MLflow UI on loopback over the local store."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import HARNESS, ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]  # end to end: real Ray, a real MLflow server, the CLI


def test_ui_serves_the_local_store(harness_home: Path):
    port = free_port()
    proc = subprocess.Popen(
        [*HARNESS, "ui", "--port", str(port)],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "the UI did not come up"
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert "mlflow" in response.read().decode().lower()
        assert (harness_home / "mlflow.db").is_file()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
