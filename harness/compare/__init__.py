"""`harness compare`: strategies x seeds over one base study, on one budget."""

from harness.compare.execute import (
    ComparisonOutcome,
    is_comparison_file,
    is_comparison_folder,
    resume_comparison,
    run_comparison,
)
from harness.compare.spec import (
    UNBOUNDED_TRIALS,
    ComparisonSpec,
    comparison_problems,
    derive_study,
    load_comparison,
    split_strategy,
)

__all__ = [
    "UNBOUNDED_TRIALS",
    "ComparisonOutcome",
    "ComparisonSpec",
    "comparison_problems",
    "derive_study",
    "is_comparison_file",
    "is_comparison_folder",
    "load_comparison",
    "resume_comparison",
    "run_comparison",
    "split_strategy",
]
