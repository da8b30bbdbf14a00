"""Data layer: GDSC bulk data, drug-response labels, single-cell input, gene identifiers."""

from .binarize import Binarization, binarize_response, waterfall_cutoff
from .gdsc import BulkData, load_gdsc, load_gdsc_release
from .names import normalize_name, resolve_name

__all__ = [
    "Binarization",
    "BulkData",
    "binarize_response",
    "load_gdsc",
    "load_gdsc_release",
    "normalize_name",
    "resolve_name",
    "waterfall_cutoff",
]
