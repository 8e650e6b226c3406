"""Cheap benchmark objectives with known optima (Branin, Hartmann-6, a learning curve), for
comparing search strategies with exact regret."""

from harness.objectives.functions import OBJECTIVE_METRIC, REGRET_METRIC
from harness.objectives.registry import OBJECTIVES, ObjectiveConfig, ObjectiveEntry, evaluate, objective_problems

__all__ = [
    "OBJECTIVES",
    "OBJECTIVE_METRIC",
    "REGRET_METRIC",
    "ObjectiveConfig",
    "ObjectiveEntry",
    "evaluate",
    "objective_problems",
]
