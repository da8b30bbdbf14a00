"""The scDEAL model: configuration, training, prediction, persistence, metrics."""

from pathlib import Path
from typing import Any

from ._model import ScDEAL
from .cache import MemoryCache, ModelCache
from .config import ScDealConfig, preset, presets
from .joint import JointScDEAL
from .labelled import stack_line
from .metrics import METRIC_NAMES, classification_metrics

__all__ = ["METRIC_NAMES", "PRESETS", "JointScDEAL", "MemoryCache", "ModelCache", "ScDEAL",
           "ScDealConfig", "classification_metrics", "load_model", "preset", "presets",
           "stack_line"]


def load_model(path: str | Path, *, device: str | None = None) -> ScDEAL | JointScDEAL:
    """A saved model, of the class it was saved from (:class:`ScDEAL` or
    :class:`JointScDEAL`)."""
    from ._persistence import model_kind

    cls = JointScDEAL if model_kind(path) == "joint" else ScDEAL
    return cls.load(path, device=device)


def __getattr__(name: str) -> Any:
    if name == "PRESETS":  # built on first use (see scdeal.model.config.presets)
        return presets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
