"""scDEAL: single-cell drug response prediction by deep transfer learning from bulk cell lines.

The public API is loaded on first use, so ``import scdeal`` (and ``scdeal --help``) stays fast:

- :class:`ScDEAL` and :class:`ScDealConfig`: the model (``scdeal.model``);
  :class:`JointScDEAL`: one model for many drugs (``scdeal screen --strategy joint`` fits
  one per block of similar drugs, :class:`scdeal.model.ScreenModel`);
- ``scdeal.data``: GDSC bulk data, single-cell input, gene identifiers, labels;
- ``scdeal.tl``: analyses (attributions, critical genes, gene scores, trajectories, ...);
- ``scdeal.pl``: figures;
- :class:`ScdealError`: every problem a user can fix.

Examples
--------
>>> import scdeal
>>> scdeal.ScDEAL(n_models=2)
ScDEAL(not fitted, extractor='dae', gene_space='shared')
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("scdeal")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from .errors import ScdealError

_SUBMODULES = ("data", "datasets", "nn", "model", "tl", "pl", "workflows", "benchmark", "cli")
_EXPORTS = {"ScDEAL": "model", "ScDealConfig": "model", "JointScDEAL": "model"}

__all__ = ["JointScDEAL", "ScDEAL", "ScDealConfig", "ScdealError", "__version__", "data", "model", "nn", "pl",
           "tl"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from . import data, model, nn, pl, tl
    from .model import JointScDEAL, ScDEAL, ScDealConfig


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = import_module(f".{name}", __name__)
    elif name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES, *_EXPORTS})
