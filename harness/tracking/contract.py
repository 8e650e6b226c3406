"""The MLflow contract: every tag, status, artifact name and metric prefix the harness writes
and the dashboards read. Plain constants, no imports, so any layer may use it.

Layout: experiment = study; parent run = one execution (`KIND` = `KIND_STUDY`); child run =
one trial (`KIND_TRIAL`, `mlflow.parentRunId` = the parent); a comparison is a run of its own
(`KIND_COMPARISON`) with its executions' parent runs nested under it.
"""

# --- run statuses (MLflow's own names) ----------------------------------------------------
RUNNING, FINISHED, KILLED, FAILED = "RUNNING", "FINISHED", "KILLED", "FAILED"

# --- tags on every run the harness opens --------------------------------------------------
KIND = "harness.kind"
KIND_STUDY, KIND_TRIAL, KIND_COMPARISON, KIND_LR_FIND = "study", "trial", "comparison", "lr_find"
KIND_TEACHER = "teacher"  # a compression study's teacher, trained once per execution
KIND_CLAIM = "claim"  # a claim's test: its arms' study executions are nested under it
CLAIM, ARM, VERDICT = "claim", "arm", "verdict"  # tags of claim runs and of their executions
PARENT_RUN_ID = "mlflow.parentRunId"  # MLflow's nesting tag
RUN_NAME = "mlflow.runName"
GIT_COMMIT = "git_commit"  # `none` outside a git checkout
HARNESS_VERSION = "harness_version"
SOURCE_HASH = "source_hash"  # of the harness's Python sources: what ran, with or without git
PYTHON = "python"

# --- experiments (MLflow's own tag names) --------------------------------------------------
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"  # the UI's model-training view
NOTE = "mlflow.note.content"  # the description the UI shows

# --- study (parent) runs -------------------------------------------------------------------
STRATEGY = "strategy"
SEED = "seed"
SPEC_HASH = "spec_hash"
TRIAL_KIND = "trial_kind"  # training, kfold, objective, ... (harness.trial.kinds)
RAY_EXPERIMENT_PATH = "ray_experiment_path"
BEST_TRIAL_ID = "best_trial_id"
# A bias-variance study: the trial with the lowest true expected error (`bv/expected_error`),
# beside the one the validation metric chose.
TRUE_BEST_TRIAL_ID = "bias_variance.true_best_trial_id"
BEST_RUN_ID = "best_run_id"
TRIALS_FAILED = "trials_failed"

# --- trial (child) runs ---------------------------------------------------------------------
TRIAL_ID = "trial_id"
STATUS = "status"  # mirrors the run status, searchable as a tag
STOP_REASON = "stop_reason"
EARLY_STOP = "early_stopping"  # the reason a trial stopped itself (its report's `stop_reason`)
CONFIG = "config"  # the trial's current configuration (PBT changes it mid-run)
NODE_ID = "node_id"
DEVICE = "device"
RETRIES = "retries"  # times Ray Tune restarted the trial after its worker or node was lost
RETRY_CAUSE = "retry_cause"  # the loss that caused the last of them

# --- comparison runs ------------------------------------------------------------------------
COMPARISON_ID = "comparison_id"
COMPARISON_FOLDER = "comparison_folder"
BUDGET = "budget"
BASELINE = "baseline"

# --- lr-find runs ---------------------------------------------------------------------------
DIVERGED = "diverged"

# --- multi-objective studies ----------------------------------------------------------------
PARETO = "pareto"  # on a trial run: "true" when it is on the study's Pareto front
FEASIBLE = "feasible"  # on a trial run: "false" when a search constraint excluded it
PARETO_PREFIX = "pareto/"  # on the parent: pareto/<trial_id>/test/acc, one per front member
HYPERVOLUME = "pareto/hypervolume"
PARETO_SIZE = "pareto/size"
PARETO_CSV = "pareto.csv"

# --- compression studies --------------------------------------------------------------------
TEACHER_RUN_ID = "teacher_run_id"  # on the parent: the run whose model the trials compress

# --- artifacts ------------------------------------------------------------------------------
SPEC_ARTIFACT = "spec.yaml"
TRIAL_SPEC_ARTIFACT = "trial_spec.yaml"
ENVIRONMENT_ARTIFACT = "environment.txt"
REPORT_ARTIFACT = "report.json"
ERROR_ARTIFACT = "error.txt"
WEIGHTS_HISTOGRAM_JSON = "weights_histogram.json"
WEIGHTS_HISTOGRAM_PNG = "weights_histogram.png"
COMPARISON_SPEC_ARTIFACT = "comparison.yaml"
MODEL_ARTIFACT = "model"  # an MLflow model (pytorch flavour): a study's best model, a teacher
COMPRESSED_DIR = "compressed"
DASHBOARD_ARTIFACT = "dashboard.html"  # a study's interactive dashboard (dashboards/)  # a compression trial's shipped artifact (ONNX or packed weights)

# --- metrics --------------------------------------------------------------------------------
EPOCH = "epoch"  # logged at every epoch step; the trial's progress
SPLITS = ("train", "val", "test")  # `split/name` keys: train/loss, val/acc, test/rmse/<regime bin>
BEST_PREFIX = "best/"  # a parent run's chosen-trial values: best/val/loss
CONFIG_PREFIX = "config/"  # PBT's live hyperparameter values, per epoch
LR = "lr"
OBJECTIVE_VALUE = "objective/value"  # an objective study's observed (noisy) value
OBJECTIVE_REGRET = "objective/regret"  # its exact, noise-free regret

# --- reasons ------------------------------------------------------------------------------
ORPHAN_REASON = "driver stopped before the study state recorded this trial; it was not resumed"
INTERRUPTED_REASON = "driver interrupted; `harness resume` continues this trial"


SPARSITY = "sparsity"  # a compression trial's fraction of zero weights


def is_epoch_metric(key: str) -> bool:
    """Whether a reported key is a per-epoch metric the harness logs (`split/name` keys, `lr`,
    `sparsity`)."""
    return "/" in key or key in (LR, SPARSITY)
