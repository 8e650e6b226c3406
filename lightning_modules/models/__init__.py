"""Model registry, the networks, and the LightningModule that trains them."""

from lightning_modules.models import mlp  # noqa: F401  (registers "mlp")
from lightning_modules.models.mlp import MLPConfig
from lightning_modules.models.registry import MODELS, ModelEntry, build_network
from lightning_modules.models.supervised import SupervisedModule

__all__ = ["MODELS", "MLPConfig", "ModelEntry", "SupervisedModule", "build_network"]
