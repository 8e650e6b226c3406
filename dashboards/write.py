"""Write a dashboard page to a file and attach it to the MLflow run it describes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from dashboards.study_data import executions, load_study
from dashboards.study_page import seeds_page, study_page
from harness.tracking import contract as c


def study_dashboard(client: MlflowClient, run_id: str, out: Path, attach: bool = True) -> Path:
    """The dashboard of the execution whose parent run is `run_id`, written to `out` and (with
    `attach`) logged on that run as `dashboard.html`, so the MLflow UI shows it."""
    page = study_page(load_study(client, run_id))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    if attach:
        if out.name == c.DASHBOARD_ARTIFACT:
            client.log_artifact(run_id, str(out))
        else:  # logged under the contract's name, from a scratch copy (nothing left beside `out`)
            with tempfile.TemporaryDirectory() as tmp:
                named = Path(tmp) / c.DASHBOARD_ARTIFACT
                named.write_text(page)
                client.log_artifact(run_id, str(named))
    return out


def seeds_dashboard(client: MlflowClient, experiment: str, out: Path) -> Path:
    """Every finished execution of a study (an experiment) on one page."""
    ids = executions(client, experiment)
    if not ids:
        raise ValueError(f"experiment {experiment!r} has no finished execution")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(seeds_page([load_study(client, run_id) for run_id in ids]))
    return out
