"""The scDEAL model: configuration, training, prediction, persistence, metrics."""

from pathlib import Path
from typing import Any

from ._model import ScDEAL
from .cache import MemoryCache, ModelCache
from .config import ScDealConfig, preset, presets
from .joint import JointScDEAL
from .labelled import stack_line
from .metrics import METRIC_NAMES, classification_metrics
from .screen_model import ScreenModel

__all__ = ["METRIC_NAMES", "PRESETS", "JointScDEAL", "MemoryCache", "ModelCache", "ScDEAL",
           "ScDealConfig", "ScreenModel", "classification_metrics", "load_model", "preset",
           "presets", "stack_line"]


def load_model(path: str | Path, *,
               device: str | None = None) -> ScDEAL | JointScDEAL | ScreenModel:
    """A saved model, of the class it was saved from (:class:`ScDEAL`, :class:`JointScDEAL`
    or :class:`ScreenModel`, a joint screen's ``OUT/model``).

    Examples
    --------
    >>> import scdeal
    >>> from scdeal.data.simulate import demo_target
    >>> bulk = scdeal.data.load_gdsc()                                         # doctest: +GDSC_DATA
    >>> adata, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    >>> model = scdeal.ScDEAL(n_models=1, pretrain_epochs=2, predictor_epochs=2,
    ...                       transfer_epochs=2, cache=False)
    >>> _ = model.fit(adata, "Gefitinib", bulk=bulk.without_lines(held), gene_ids="symbol")
    >>> loaded = load_model(model.save("gefitinib_model"))
    >>> type(loaded).__name__, loaded.drug
    ('ScDEAL', 'Gefitinib')
    """
    from ._persistence import model_kind

    cls = {"joint": JointScDEAL, "screen": ScreenModel}.get(model_kind(path), ScDEAL)
    return cls.load(path, device=device)


def __getattr__(name: str) -> Any:
    if name == "PRESETS":  # built on first use (see scdeal.model.config.presets)
        return presets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
