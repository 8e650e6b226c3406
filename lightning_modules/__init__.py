"""Pure PyTorch + Lightning building blocks: data, models, optimizers, schedules.

Nothing here knows about Ray, MLflow or YAML; each piece can be used alone in a notebook.
"""

from lightning_modules import data, models, optim  # noqa: F401  (fills the registries)
