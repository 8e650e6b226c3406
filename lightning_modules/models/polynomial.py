"""Polynomial regression: powers of the inputs, then one linear layer, fitted by gradient descent."""

from __future__ import annotations

import itertools
import warnings
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from lightning_modules.config import Config
from lightning_modules.data.datasets import DataShape
from lightning_modules.models.layers import output_head
from lightning_modules.models.registry import MODELS, ModelEntry

# Above this many terms the feature matrix outgrows a laptop's memory for any useful batch.
MAX_TERMS = 100_000


class PolynomialConfig(Config):
    """`degree` is the capacity knob: 0 is a constant, 1 a linear model, higher degrees bend."""

    kind: Literal["polynomial"] = "polynomial"
    degree: int = Field(3, ge=0)
    interactions: bool = Field(False, description="also products of different inputs (x1 * x2, ...)")
    basis: Literal["monomial", "legendre"] = Field(
        "monomial", description="legendre: orthogonal on [-1, 1], so gradient descent fits high degrees as well as low"
    )

    @model_validator(mode="after")
    def _legendre_alone(self) -> PolynomialConfig:
        if self.basis == "legendre" and self.interactions:
            raise ValueError("the legendre basis has no interaction terms; set interactions: false")
        return self


class PolynomialFeatures(nn.Module):
    """Monomials of the flattened input of total degree 1..`degree` (the bias is the linear
    layer's). Without interactions: x_i^k for every input i and power k, `inputs * degree` terms."""

    def __init__(self, inputs: int, degree: int, interactions: bool, basis: str = "monomial") -> None:
        super().__init__()
        self.degree, self.interactions, self.basis = degree, interactions, basis
        if interactions:
            for k in range(1, degree + 1):
                combos = list(itertools.combinations_with_replacement(range(inputs), k))
                self.register_buffer(f"terms{k}", torch.tensor(combos, dtype=torch.long), persistent=False)
        self.num_terms = count_terms(inputs, degree, interactions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if self.degree == 0:
            return x[:, :0]
        if self.basis == "legendre":
            return torch.cat(legendre(x, self.degree)[1:], dim=1)
        if not self.interactions:
            return torch.cat([x**k for k in range(1, self.degree + 1)], dim=1)
        # x[:, terms] gathers each monomial's factors: (batch, terms, k) -> product over k.
        return torch.cat([x[:, getattr(self, f"terms{k}")].prod(-1) for k in range(1, self.degree + 1)], dim=1)


def legendre(x: torch.Tensor, degree: int) -> list[torch.Tensor]:
    """P_0(x) .. P_degree(x) by Bonnet's recurrence (k+1) P_{k+1} = (2k+1) x P_k - k P_{k-1}:
    bounded by 1 on [-1, 1] and orthogonal there, unlike the monomials x^k, whose columns are
    nearly collinear at high degree (a badly conditioned fit for gradient descent)."""
    terms = [torch.ones_like(x), x]
    for k in range(1, degree):
        terms.append(((2 * k + 1) * x * terms[k] - k * terms[k - 1]) / (k + 1))
    return terms[: degree + 1]


def count_terms(inputs: int, degree: int, interactions: bool) -> int:
    if not interactions:
        return inputs * degree
    from math import comb

    return sum(comb(inputs + k - 1, k) for k in range(1, degree + 1))


def build_polynomial(cfg: PolynomialConfig, shape: DataShape) -> nn.Module:
    terms = count_terms(shape.num_features, cfg.degree, cfg.interactions)
    if terms > MAX_TERMS:
        raise ValueError(
            f"model.degree {cfg.degree} with interactions on {shape.num_features} inputs makes {terms} terms "
            f"(at most {MAX_TERMS}); lower the degree or set interactions: false"
        )
    with warnings.catch_warnings():
        # Degree 0 has no terms: torch warns that initializing the empty weight does nothing.
        warnings.filterwarnings("ignore", "Initializing zero-element tensors")
        head = output_head(terms, shape)
    # Zero weights: the fit is convex, so a fixed start loses nothing and makes degree 0 a plain bias.
    linear = head[0] if isinstance(head, nn.Sequential) else head
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(PolynomialFeatures(shape.num_features, cfg.degree, cfg.interactions, cfg.basis), head)


MODELS.register("polynomial")(ModelEntry(config=PolynomialConfig, build=build_polynomial))
