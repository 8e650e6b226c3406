"""Compression studies at the study level: the teacher every trial compresses (trained once per
execution, or loaded from a finished run's MLflow model). The trial itself is a trial kind
(`harness.trial.compression`); the steps are `lightning_modules.compression`."""
