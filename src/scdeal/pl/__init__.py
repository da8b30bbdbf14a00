"""Figures (matplotlib) of scDEAL predictions and their interpretation, scanpy-style.

Plots of per-cell results take the AnnData first and the keys to read as keywords (the keys
:meth:`scdeal.model.ScDEAL.predict` and the :mod:`scdeal.tl` functions write); plots of result
tables (:func:`stability_boxplot`, :func:`enrichment_barplot`, :func:`screen_heatmap`) take the
table. All follow scanpy's conventions:

- ``show=None`` shows the figure as ``scanpy.settings.autoshow`` says (never on a backend that
  only writes files, such as Agg); a shown figure returns ``None``;
- otherwise single-panel plots return their Axes (``ax=`` draws into a given one) and
  multi-panel plots their Figure (like scanpy's ``return_fig=True``);
- ``save=`` is a file path (``figures/umap.png``; the extension decides the format), unlike
  scanpy's suffix of a default name; :func:`save_figure` writes PNG and PDF at once.

A missing key raises a one-line :class:`scdeal.errors.ScdealError` naming the key and what
writes it. Figures that are not shown are built without pyplot (nothing lingers in its state).
"""

from ._save import new_figure, save_figure
from .analysis import attribution_heatmap, gene_score_regression, trajectory_panels
from .predictions import embedding, prediction_panels, roc_pr_curves, scatter_panel
from .screen import screen_heatmap
from .tables import enrichment_barplot, stability_boxplot

__all__ = [
    "attribution_heatmap",
    "embedding",
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
