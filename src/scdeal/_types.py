"""The choices shared by several layers, declared once (no heavy imports: the CLI reads them).

Each is a ``Literal`` type; :func:`choices` gives its values (for validation and ``argparse``).

Examples
--------
>>> choices(ExtractorKind)
('ae', 'dae', 'vae')
"""

from __future__ import annotations

from typing import Literal, get_args

# networks (scdeal.nn) and their configuration (scdeal.model.config)
ExtractorKind = Literal["ae", "dae", "vae"]
Activation = Literal["relu", "leaky_relu", "elu", "gelu"]
NoiseKind = Literal["mask", "gaussian"]
# class balancing of the bulk training split (model configuration, paper presets)
Sampling = Literal["none", "upsampling", "downsampling", "smote"]
# gene identifier types of a target ("auto" detects them: scdeal.data.genes.detect_id_type)
IdType = Literal["auto", "symbol", "entrez", "ensembl", "mouse_ensembl", "mouse_symbol"]
# classification metrics, in the order scdeal.model.metrics.classification_metrics returns them
MetricName = Literal["auroc", "ap", "f1", "f1_weighted", "mcc", "balanced_accuracy", "n_cells",
                     "prevalence"]


def choices(literal) -> tuple[str, ...]:
    """The values of a ``Literal`` type, in declaration order."""
    return tuple(get_args(literal))
