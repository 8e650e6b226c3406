"""Search strategies: the search-space DSL, the searcher and scheduler registries with their
named presets, the adapters that seed Ray Tune's and Optuna's searchers, and study budgets."""

from harness.search.strategies import (
    SCHEDULERS,
    SEARCHERS,
    STRATEGIES,
    SchedulerEntry,
    SearcherEntry,
    max_epochs_bound,
    resolve_strategy,
    strategy_problems,
)

__all__ = [
    "SCHEDULERS",
    "SEARCHERS",
    "STRATEGIES",
    "SchedulerEntry",
    "SearcherEntry",
    "max_epochs_bound",
    "resolve_strategy",
    "strategy_problems",
]
