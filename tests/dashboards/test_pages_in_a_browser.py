"""Every kind of page in a real headless Chromium: it loads from a file with no console error
and no network request, every plot holds as many points as there are trials in MLflow, the
tables fit a 1280 px window, and the screenshot is not blank."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dashboards.comparison import summarize
from dashboards.report import ReportSettings, write_report
from dashboards.write import seeds_dashboard, study_dashboard
from tests.dashboards.mlflow_runs import make_study
from tests.dashboards.test_study_data import TRIALS

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
if CHROMIUM is None:
    pytest.skip("no Chromium on this machine (apt-get install chromium)", allow_module_level=True)

# Plotly's full data: arrays decoded from the page's typed-array encoding.
PLOTS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => gd._fullData.map(t => ({
    type: t.type, name: t.name || '', visible: t.visible, mode: t.mode || '',
    points: t.dimensions ? t.dimensions[0].values.length : (t.x ? t.x.length : (t.y ? t.y.length : 0)),
    finite: t.y ? Array.from(t.y).filter(v => v !== null && Number.isFinite(v)).length : null,
})))"""


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def visit(browser, path: Path) -> tuple[list, dict]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    network: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: network.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
    page.goto(path.as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
    plots = page.evaluate(PLOTS)
    layout = page.evaluate("""() => ({
        width: document.documentElement.scrollWidth,
        tables: [...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right),
    })""")
    shot = page.screenshot(full_page=True)
    page.close()
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB").resize((200, 400)))
    assert not errors, errors
    assert not network, network  # everything inlined: opens offline
    assert layout["width"] <= 1280 and all(right <= 1280 for right in layout["tables"]), layout
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # not blank
    return plots, layout


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_study_page(browser, client: MlflowClient, tmp_path: Path):
    run_id = make_study(client, "browser-study", TRIALS)
    plots, _ = visit(browser, study_dashboard(client, run_id, tmp_path / "study.html"))
    history, curves = plots[0], plots[1]
    completed = sum(t.get("status", "FINISHED") != "FAILED" for t in TRIALS)
    assert history[0]["points"] == completed  # every completed trial (failed ones have no value)
    assert len(curves) == len(TRIALS) and sorted(t["points"] for t in curves) == sorted(len(t["curve"]) for t in TRIALS)
    parallel, slices = plots[2], plots[-1]
    assert sum(t["mode"] == "lines" for t in parallel) == completed  # one line per completed trial
    assert all(t["points"] == completed for t in slices)  # each parameter's slice
    assert [a.path for a in client.list_artifacts(run_id)].count("dashboard.html") == 1  # attached to the run


def test_multi_objective_page(browser, client: MlflowClient, tmp_path: Path):
    trials = [
        {"params": {"amount": str(a)}, "curve": [acc], "pareto": p,
         "final": {"val/acc": acc, "size/bytes": size, "teacher/val/acc": 0.96, "size/teacher_bytes": 4000.0}}
        for a, acc, size, p in [(0.1, 0.95, 900.0, True), (0.5, 0.93, 500.0, True), (0.9, 0.90, 600.0, False), (0.7, 0.91, 450.0, True)]
    ]
    run_id = make_study(client, "browser-pareto", trials, metric="val/acc", mode="max",
                        objectives=[("val/acc", "max"), ("size/bytes", "min")], reference={"val/acc": 0.8, "size/bytes": 1000.0})
    plots, _ = visit(browser, study_dashboard(client, run_id, tmp_path / "pareto.html"))
    pareto = next(p for p in plots if any(t["name"] == "teacher (uncompressed)" for t in p))
    assert sum(t["points"] for t in pareto if t["name"] != "teacher (uncompressed)") == len(trials)


def test_seeds_page(browser, client: MlflowClient, tmp_path: Path):
    for seed in range(3):
        make_study(client, "browser-seeds", TRIALS, seed=seed)
    plots, _ = visit(browser, seeds_dashboard(client, "browser-seeds", tmp_path / "seeds.html"))
    seeds = [t for t in plots[0] if t["name"].startswith("seed ")]
    assert len(seeds) == 3 and all(t["points"] == len(TRIALS) for t in seeds)


def test_comparison_page(browser, tmp_path: Path):
    rows = []
    for strategy, trials in (("random", 10), ("tpe", 16)):
        for seed in range(2):
            values = np.random.default_rng(seed).uniform(0.1, 1.0, trials)
            for i, value in enumerate(values, start=1):
                rows.append({"strategy": strategy, "seed": seed, "study_run_id": f"{strategy}{seed}", "trial_id": str(i),
                             "status": "FINISHED", "value": value, "regret": np.nan, "epochs": 1,
                             "spent_trials": i, "spent_epochs": i, "spent_seconds": float(i)})
    trials = pd.DataFrame(rows)
    summary = summarize(trials, "min", axis="trials", limit=16, baseline="random")
    settings = ReportSettings("browser-compare", "val/loss", "min", "trials", 16, "random")
    paths = write_report(tmp_path / "report", settings, trials, summary)
    page = paths[-1]
    assert "2 seeds: the 95% intervals are wide" in page.read_text() and "can be significant at 0.05" in page.read_text()
    plots, _ = visit(browser, page)
    by_trials = plots[0]
    random_mean = next(t for t in by_trials if t["name"] == "random")
    tpe_mean = next(t for t in by_trials if t["name"] == "tpe")
    # On one grid of 16 trials, random's curve ends at its 10th trial instead of running flat to 16.
    assert random_mean["points"] == tpe_mean["points"] == 16
    assert random_mean["finite"] == 10 and tpe_mean["finite"] == 16
