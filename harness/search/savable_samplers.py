"""Optuna samplers that can be saved with Ray Tune's experiment state.

Ray pickles the searcher, and with it the Optuna sampler, every time it saves a study's state.
Optuna 5.1's genetic samplers hold a `threading.Lock` and define no `__getstate__`, so they
cannot be pickled; these subclasses leave the lock out when saved and make a new one when
loaded. Imported only by a study that uses them (it imports Optuna).
"""

from __future__ import annotations

import threading
from typing import Any

from optuna.samplers import NSGAIISampler


class SavableNSGAIISampler(NSGAIISampler):
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()
