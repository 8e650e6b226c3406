"""Pure PyTorch + Lightning building blocks: data, models, regularizers, optimizers, schedules,
training callbacks. Nothing here knows about Ray, MLflow or YAML; each piece can be used alone
in a notebook. Each sub-package fills its registries when imported."""
