"""The scDEAL model: configuration, training, prediction, persistence, metrics."""

from ._model import ScDEAL
from .config import PRESETS, ScDealConfig, preset
from .metrics import METRIC_NAMES, classification_metrics

__all__ = ["METRIC_NAMES", "PRESETS", "ScDEAL", "ScDealConfig", "classification_metrics",
           "preset"]
