"""Write a dashboard page to a file and attach it to the MLflow run it describes."""

from __future__ import annotations

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
        client.log_artifact(run_id, str(_named(out)))
    return out


def seeds_dashboard(client: MlflowClient, experiment: str, out: Path) -> Path:
    """Every finished execution of a study (an experiment) on one page."""
    ids = executions(client, experiment)
    if not ids:
        raise ValueError(f"experiment {experiment!r} has no finished execution")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(seeds_page([load_study(client, run_id) for run_id in ids]))
    return out


def _named(path: Path) -> Path:
    """The page under the artifact name the contract gives it (a copy beside it when the file
    has another name)."""
    if path.name == c.DASHBOARD_ARTIFACT:
        return path
    target = path.parent / f".{path.stem}" / c.DASHBOARD_ARTIFACT
    target.parent.mkdir(exist_ok=True)
    target.write_text(path.read_text())
    return target
