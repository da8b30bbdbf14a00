"""Interpretation and the paper's downstream analyses (scanpy-style ``tl``).

- :func:`integrated_gradients`: attributions of both outputs to every gene (captum);
- :func:`critical_genes`: genes whose attributions differ between predicted groups;
- :func:`gene_scores`: sensitive/resistant gene scores from predicted and true groups;
- :func:`stability_test`: retraining on stratified 80% subsamples;
- :func:`cell_graph`, :func:`trajectory`: UMAP, diffusion pseudotime, PAGA, layout;
- :func:`over_representation` with :func:`read_gmt` / :func:`read_regulons`: enrichment;
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
