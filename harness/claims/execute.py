"""`harness claims`: run each claim's arms over seeds, decide, track, write the table.

Every (claim, seed, arm) is one study execution of the claim's study with the arm's values
pinned and one trial, tracked as usual in the experiment `claim.<name>` and nested under the
claim's own run (kind `claim`), which records the per-seed effects and the verdict. A state
file in the claims folder records each measured value as it comes, so `--resume FOLDER`
continues where a stopped run left off (an execution cut short is run again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.claims.spec import ClaimSpec, evaluate
from harness.claims.verdict import Verdict, decide
from harness.errors import SpecError
from harness.paths import default_storage, default_tracking_uri, harness_home
from harness.run.cluster import init_ray
from harness.run.execute import run_study
from harness.run.pool import Job, JobResult, auto_parallel, run_jobs
from harness.study import StudySpec
from harness.tracking import contract as c
from harness.tracking.runs import StudyRun, client_for, end_run, finish_study_run, open_run
from harness.tracking.store import check_store, check_writable

STATE_FILE = "harness_claims.json"


@dataclass
class ClaimResult:
    """One claim's measured values by seed and arm (None: the arm's trial failed), its run."""

    name: str
    run_id: str | None = None
    values: dict[str, dict[str, float | None]] = field(default_factory=dict)  # seed -> arm -> value
    verdict: dict[str, Any] | None = None

    def effects(self, claim: ClaimSpec) -> list[float | None]:
        return [claim.effect_of(arms) for arms in self.values.values() if set(claim.measured_arms) <= set(arms)]


@dataclass
class ClaimsState:
    quick: bool
    seeds: int
    tracking_uri: str
    results: dict[str, ClaimResult]
    # Executions by the hash of their spec (seed included): claims that share an arm (three
    # capacity claims compare the same degrees) measure the same run, made once.
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        raw = {"quick": self.quick, "seeds": self.seeds, "tracking_uri": self.tracking_uri,
               "results": {k: asdict(v) for k, v in self.results.items()}, "executions": self.executions}
        tmp = folder / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(raw, indent=2))
        tmp.replace(folder / STATE_FILE)

    @classmethod
    def load(cls, folder: Path) -> ClaimsState:
        file = folder / STATE_FILE
        if not file.is_file():
            raise SpecError(f"{folder}: not a claims folder (no {STATE_FILE}); give the folder `harness claims` printed")
        raw = json.loads(file.read_text())
        results = {k: ClaimResult(**v) for k, v in raw["results"].items()}
        return cls(raw["quick"], raw["seeds"], raw["tracking_uri"], results, raw.get("executions", {}))


def seeds_of(claim: ClaimSpec, state: ClaimsState) -> list[int]:
    return list(range(state.seeds or (1 if state.quick else claim.seeds)))


def run_claims(
    claims: list[ClaimSpec],
    *,
    quick: bool = False,
    seeds: int | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage: str | Path | None = None,
    resume: str | Path | None = None,
    reuse: list[str | Path] | None = None,
    announce: Callable[[Path], None] | None = None,
    progress: Callable[[str], None] = lambda line: None,
    parallel: int | None = None,
) -> tuple[Path, ClaimsState]:
    """Measure every claim's arms over its seeds (or `seeds`; one with `quick`), decide each
    claim, and return the claims folder and what was measured. `reuse` names other claims
    folders whose executions (the same resolved spec and seed) are taken instead of run again;
    `parallel` executions run at once (default: as many as the cluster's CPUs keep busy)."""
    if resume is not None:
        folder = Path(resume).resolve()
        state = ClaimsState.load(folder)
        tracking_uri = state.tracking_uri
    else:
        tracking_uri = tracking_uri or default_tracking_uri()
        root = Path(storage).resolve() if storage else harness_home() / "claims"
        check_store(tracking_uri, create=False)
        check_writable(root, "--storage")
        folder = root / f"claims{'-quick' if quick else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
        folder.mkdir(parents=True, exist_ok=True)
        state = ClaimsState(quick, seeds or 0, tracking_uri, {})
    for other in reuse or []:
        done = ClaimsState.load(Path(other).resolve())
        if done.tracking_uri != state.tracking_uri:
            raise SpecError(f"--reuse {other}: its runs are in {done.tracking_uri}, not {state.tracking_uri}")
        for key, execution in done.executions.items():
            state.executions.setdefault(key, execution)
    for claim in claims:
        state.results.setdefault(claim.name, ClaimResult(claim.name))
    state.save(folder)
    if announce is not None:
        announce(folder)
    init_ray(address)
    check_store(tracking_uri)
    for claim in claims:
        _run_claim(claim, state, folder, parallel, address=address, progress=progress)
    return folder, state


def _run_claim(
    claim: ClaimSpec, state: ClaimsState, folder: Path, parallel: int | None, *, address: str | None,
    progress: Callable[[str], None],
) -> None:
    result = state.results[claim.name]
    client = client_for(state.tracking_uri)
    experiment = f"claim.{claim.name}"
    if result.run_id is None:
        run = open_run(state.tracking_uri, experiment, c.KIND_CLAIM, f"claim-{time.strftime('%Y%m%d-%H%M%S')}",
                       {c.CLAIM: claim.name, "topic": claim.topic, "quick": str(state.quick).lower()})
        result.run_id = run.parent_run_id
        for key, value in {"statement": claim.statement, "study": claim.source, "measure": claim.measure,
                           "better": claim.better, "margin": claim.margin, "threshold": claim.threshold,
                           "contrast": claim.contrast}.items():
            client.log_param(result.run_id, key, str(value)[:6000])
        state.save(folder)
    else:
        client.update_run(result.run_id, status=c.RUNNING)
    claim_run = StudyRun(state.tracking_uri, client.get_run(result.run_id).info.experiment_id, result.run_id)
    try:
        _measure(claim, state, result, folder, experiment, parallel, address=address, progress=progress)
        verdict = decide(result.effects(claim))
        result.verdict = asdict(verdict)
        state.save(folder)
        _record(client, result.run_id, verdict)
        finish_study_run(claim_run)
        progress(f"{claim.name}: {verdict.verdict} ({verdict.reason})")
    except BaseException as exc:
        status = c.KILLED if isinstance(exc, KeyboardInterrupt) else c.FAILED
        end_run(client, result.run_id, status, f"{type(exc).__name__}: {exc}", only_if_running=True)
        raise


def _measure(
    claim: ClaimSpec, state: ClaimsState, result: ClaimResult, folder: Path, experiment: str, parallel: int | None,
    *, address: str | None, progress: Callable[[str], None],
) -> None:
    """Measure every (seed, arm) of the claim not measured yet: executions another claim (or a
    `--reuse` folder) made are taken; the rest run, several at once (`parallel`, by default as
    many as the cluster's CPUs keep busy), each recorded as soon as it ends."""
    client = client_for(state.tracking_uri)
    wanted: dict[str, list[tuple[str, str]]] = {}  # execution key -> the (seed, arm) it measures
    specs: dict[str, StudySpec] = {}
    for seed in seeds_of(claim, state):
        for arm in claim.measured_arms:
            if arm in result.values.setdefault(str(seed), {}):
                continue
            spec = claim.arm_spec(arm, seed, state.quick)
            key = spec.spec_hash()
            if key in state.executions:
                client.set_tag(result.run_id, f"reused.seed{seed}.{arm}", state.executions[key]["run_id"])
            else:
                specs.setdefault(key, spec.model_copy(update={"name": experiment}))
            wanted.setdefault(key, []).append((str(seed), arm))

    def record(key: str, reused: bool) -> None:
        done = state.executions[key]
        for seed, arm in wanted[key]:
            measured = result.values[seed]
            measured[arm] = evaluate(claim.measure, done["trial"], done["test"]) if done["trial"] is not None else None
            progress(f"{claim.name}: seed {seed}, {arm}: {claim.measure} = {_fmt(measured[arm])}{' (reused)' if reused else ''}")
            effect = claim.effect_of(measured)
            if effect is not None and set(claim.measured_arms) <= set(measured):
                client.log_metric(result.run_id, "effect", effect if abs(effect) != float("inf") else _capped(effect),
                                  step=int(seed))  # fmt: skip
        state.save(folder)

    for key in [k for k in wanted if k not in specs]:
        record(key, reused=True)
    if not specs:
        return
    tags = {key: {c.CLAIM: claim.name, c.ARM: wanted[key][0][1]} for key in specs}
    # Wall-clock budgets run one at a time unless told otherwise, as in a comparison: executions
    # sharing the cores would get unequal seconds.
    timed = any(s.search.time_budget_s for s in specs.values())
    runs = parallel or (1 if timed else auto_parallel(len(specs), max(s.resources.cpus_per_trial for s in specs.values()), 1))
    if min(runs, len(specs)) <= 1:
        for key, spec in specs.items():
            outcome = run_study(spec, address=address, tracking_uri=state.tracking_uri, progress=False,
                                parent_run_id=result.run_id, run_tags=tags[key])  # fmt: skip
            if outcome.interrupted:
                # Ctrl-C or SIGTERM stopped the execution cleanly: nothing was measured, so
                # record nothing (a missing trial is not a failed one) and stop here.
                raise KeyboardInterrupt
            state.executions[key] = _scores(state.tracking_uri, outcome.study.parent_run_id, outcome.top,
                                            outcome.test_metrics)  # fmt: skip
            record(key, reused=False)
        return
    failures: list[str] = []

    def done(job: Job, outcome: JobResult) -> None:
        if outcome.error is None and not outcome.interrupted and outcome.run_id is not None:
            state.executions[job.key] = _scores(state.tracking_uri, outcome.run_id, outcome.top, outcome.test_metrics)
            record(job.key, reused=False)
        elif not outcome.interrupted:
            failures.append(f"{job.label}: {outcome.error}")

    jobs = [
        Job(key, f"{claim.name}/{wanted[key][0][1]}/{wanted[key][0][0]}", state.tracking_uri, study=spec.to_dict(),
            storage=str(default_storage()), parent_run_id=result.run_id, run_tags=tags[key])
        for key, spec in specs.items()
    ]  # fmt: skip
    interrupted = run_jobs(jobs, folder / "executions", runs, on_done=done, echo=None)
    if failures:
        raise RuntimeError("claim executions failed; `--resume` runs them again:\n" + "\n\n".join(failures))
    if interrupted:
        raise KeyboardInterrupt


def _scores(tracking_uri: str, run_id: str, top: list[dict[str, Any]], test: dict[str, float]) -> dict[str, Any]:
    """What an arm's execution measured: the single trial's final metrics (None when it
    failed) and its sealed-test scores, with the execution's run id."""
    trial = None
    if top:
        trial = dict(client_for(tracking_uri).get_run(top[0]["run_id"]).data.metrics)
    return {"run_id": run_id, "trial": trial, "test": dict(test)}


def _capped(effect: float) -> float:
    return 1e30 if effect > 0 else -1e30  # MLflow stores finite numbers only


def _record(client: Any, run_id: str, verdict: Verdict) -> None:
    client.set_tag(run_id, c.VERDICT, verdict.verdict)
    client.set_tag(run_id, c.STOP_REASON, verdict.reason)
    for key in ("mean", "ci_low", "ci_high", "p_holds", "p_opposite", "n"):
        value = getattr(verdict, key)
        if value == value and abs(value) != float("inf"):  # MLflow takes finite numbers only
            client.log_metric(run_id, f"effect/{key}" if key != "n" else "seeds", float(value))


def _fmt(value: float | None) -> str:
    return "failed" if value is None else f"{value:.4g}"
