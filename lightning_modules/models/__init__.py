"""Model registry, the networks, and the LightningModule that trains them."""

from lightning_modules.models import cnn, mlp, polynomial, recurrent, transformer  # noqa: F401  (fill MODELS)
from lightning_modules.models.cnn import CNNConfig
from lightning_modules.models.mlp import MLPConfig
from lightning_modules.models.polynomial import PolynomialConfig
from lightning_modules.models.recurrent import GRUConfig, LSTMConfig, RNNConfig
from lightning_modules.models.registry import MODELS, ModelEntry, build_network, models_for
from lightning_modules.models.supervised import SupervisedModule
from lightning_modules.models.transformer import TransformerConfig

__all__ = [
    "MODELS",
    "CNNConfig",
    "GRUConfig",
    "LSTMConfig",
    "MLPConfig",
    "ModelEntry",
    "PolynomialConfig",
    "RNNConfig",
    "SupervisedModule",
    "TransformerConfig",
    "build_network",
    "models_for",
]
