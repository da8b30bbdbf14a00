"""The scDEAL model: configuration, training, prediction, persistence, metrics."""

from typing import Any

from ._model import ScDEAL
from .config import ScDealConfig, preset, presets
from .metrics import METRIC_NAMES, classification_metrics

__all__ = ["METRIC_NAMES", "PRESETS", "ScDEAL", "ScDealConfig", "classification_metrics",
           "preset", "presets"]


def __getattr__(name: str) -> Any:
    if name == "PRESETS":  # built on first use (see scdeal.model.config.presets)
        return presets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
