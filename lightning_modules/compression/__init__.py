"""Model compression on plain PyTorch networks: quantization (fake-quant training, packed low-bit
weights, ONNX Runtime INT8), pruning (magnitude masks, structured shrinking, lottery-ticket
rewinding), distillation, the deployable artifact, and its latency. No Ray, MLflow or YAML: a notebook can
use every piece alone. `steps.compress` chains the steps a study lists."""

from lightning_modules.compression.steps import COMPRESSION_STEPS, DistillConfig, PruneConfig, QuantizeConfig, StepEntry

__all__ = ["COMPRESSION_STEPS", "DistillConfig", "PruneConfig", "QuantizeConfig", "StepEntry"]
