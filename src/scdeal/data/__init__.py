"""Data layer: GDSC bulk data, drug-response labels, single-cell input, gene identifiers.

- reading targets: :func:`read_target` (``.h5ad``, 10x, text tables);
- their true labels: :func:`attach_labels`, :func:`binary_labels`, :func:`parse_label_map`;
- what ``X`` holds: :func:`detect_value_kind`, :func:`summarize_target`; preprocessing:
  :func:`preprocess_target` with :class:`PreprocessConfig`;
- gene identifiers: :func:`detect_id_type`, :func:`map_genes`, :func:`harmonize_var_names`;
- GDSC: :func:`load_gdsc`, :func:`binarize_response`.
"""

from .binarize import Binarization, binarize_response, waterfall_cutoff
from .gdsc import BulkData, load_gdsc, load_gdsc_release
from .genes import detect_id_type, harmonize_var_names, map_genes
from .labels import attach_labels, binary_labels, parse_label_map
from .names import normalize_name, resolve_name
from .preprocess import PreprocessConfig, preprocess_target
from .singlecell import read_target
from .values import detect_value_kind, summarize_target

__all__ = [
    "Binarization",
    "BulkData",
    "PreprocessConfig",
    "attach_labels",
    "binarize_response",
    "binary_labels",
    "detect_id_type",
    "detect_value_kind",
    "harmonize_var_names",
    "load_gdsc",
    "load_gdsc_release",
    "map_genes",
    "normalize_name",
    "parse_label_map",
    "preprocess_target",
    "read_target",
    "resolve_name",
    "summarize_target",
    "waterfall_cutoff",
]
