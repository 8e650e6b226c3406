"""nn-harness orchestration: spec, search spaces, strategies, trial, runner, tracking, CLI."""

__version__ = "0.1.0"
