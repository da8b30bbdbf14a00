"""Interpretation and the paper's downstream analyses (scanpy-style ``tl``).

The tools take the AnnData first and write their results into it under documented keys
(``key_added``, which the matching :mod:`scdeal.pl` plot reads as ``key``), and return them:

- :func:`integrated_gradients` (``adata, model``): attributions of both outputs to every
  gene (captum), returned as an AnnData of the model's genes; ``uns['integrated_gradients']``;
- :func:`critical_genes` (``attr``): genes whose attributions differ between predicted groups;
  ``attr.uns['critical_genes']``;
- :func:`gene_scores`: sensitive/resistant gene scores from predicted and true groups;
  ``obs['*_score_pred|true']``, ``uns['gene_scores']``;
- :func:`stability_test`: retraining on stratified 80% subsamples; ``uns['scdeal_stability']``;
- :func:`cell_graph`, :func:`trajectory`: UMAP, diffusion pseudotime, PAGA, layout (each
  returns a new AnnData holding the keys; ``uns['scdeal_graph']``, ``uns['scdeal_trajectory']``);
- :func:`pseudotime_correlations`: ``uns['pseudotime_correlations']``.

Helpers on gene lists, tables and arrays rather than cells (no AnnData, nothing written):
:func:`over_representation` with :func:`read_gmt` / :func:`read_regulons` (enrichment),
:func:`write_attributions`, :func:`rank_attributions`, :func:`adjust_pvalues`,
:func:`empirical_pvalue`, :func:`stratified_subsample`, :func:`choose_root`.
"""

from .attribution import AttributionConfig, integrated_gradients, write_attributions
from .critical_genes import (
    CriticalGeneConfig,
    CriticalGenes,
    adjust_pvalues,
    critical_genes,
    rank_attributions,
)
from .enrichment import GeneSets, over_representation, read_gmt, read_regulons
from .gene_scores import GeneScoreConfig, GeneScores, empirical_pvalue, gene_scores
from .stability import StabilityResult, stability_test, stratified_subsample
from .trajectory import (
    GraphConfig,
    cell_graph,
    choose_root,
    pseudotime_correlations,
    trajectory,
)

__all__ = [
    "AttributionConfig",
    "CriticalGeneConfig",
    "CriticalGenes",
    "GeneScoreConfig",
    "GeneScores",
    "GeneSets",
    "GraphConfig",
    "StabilityResult",
    "adjust_pvalues",
    "cell_graph",
    "choose_root",
    "critical_genes",
    "empirical_pvalue",
    "gene_scores",
    "integrated_gradients",
    "over_representation",
    "pseudotime_correlations",
    "rank_attributions",
    "read_gmt",
    "read_regulons",
    "stability_test",
    "stratified_subsample",
    "trajectory",
    "write_attributions",
]
