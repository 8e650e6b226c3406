"""Base class for the typed, frozen configs of every building block."""

from pydantic import BaseModel, ConfigDict


class Config(BaseModel):
    """Frozen and strict about keys: a typo is an error, never silently ignored; numbers are
    finite (`.inf` and `.nan` are refused wherever a number is expected)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
