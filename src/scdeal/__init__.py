"""scDEAL: single-cell drug response prediction by deep transfer learning from bulk cell lines."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scdeal")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from .errors import ScdealError

__all__ = ["ScdealError", "__version__"]
