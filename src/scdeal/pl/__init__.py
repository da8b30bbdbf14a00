"""Figures (matplotlib, PNG and PDF) of scDEAL predictions and their interpretation.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot; write it with
:func:`save_figure`.
"""

from ._save import new_figure, save_figure
from .analysis import (
    attribution_heatmap,
    enrichment_barplot,
    gene_score_regression,
    stability_boxplot,
    trajectory_panels,
)
from .predictions import prediction_panels, roc_pr_curves, scatter_panel
from .screen import screen_heatmap

__all__ = [
    "attribution_heatmap",
    "enrichment_barplot",
    "gene_score_regression",
    "new_figure",
    "prediction_panels",
    "roc_pr_curves",
    "save_figure",
    "scatter_panel",
    "screen_heatmap",
    "stability_boxplot",
    "trajectory_panels",
]
