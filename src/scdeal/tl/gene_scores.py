"""Sensitive and resistant gene scores from predicted and true groups (paper Methods
"Sensitive and resistant gene score analysis").

For a grouping of the cells (predicted labels, or the ground truth), the genes up in each group
are found with ``scanpy.tl.rank_genes_groups`` (Wilcoxon rank-sum, Benjamini-Hochberg), the
first ``n_top`` (50) by score with adjusted p < ``alpha`` (0.05) are kept, and every cell is
scored with ``scanpy.tl.score_genes``. Prediction-derived and truth-derived scores are compared
with Pearson's r, and r is set against a null of random gene sets of the same size scored the
same way; the empirical p-value is ``(1 + #{null r >= observed r}) / (1 + n_null)``.

Unlike the original (method notes 9.1, items 11 and 18 of section 12), both sides use the same
normalised matrix (the one the model was given, after its preprocessing) and the p-value is
computed, not typed into a figure.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from ..errors import ScdealError, warn_deprecated

log = logging.getLogger(__name__)

DIRECTIONS = ("sensitive", "resistant")


@dataclass
class GeneScoreConfig:
    """Settings of the gene-score analysis (paper defaults).

    Attributes
    ----------
    n_top
        Genes taken from the top of each group's ranking before the p-value filter.
    alpha
        Largest BH-adjusted p-value of a kept gene.
    n_null
        Random gene sets in the null distribution of r (0 skips the null).
    ctrl_size, n_bins
        ``scanpy.tl.score_genes`` control genes per bin and number of expression bins.
    seed
        Seed of the random gene sets and of score_genes' control genes.

    Examples
    --------
    >>> GeneScoreConfig(n_null=0).n_top
    50
    """

    n_top: int = 50
    alpha: float = 0.05
    n_null: int = 1000
    ctrl_size: int = 50
    n_bins: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.n_top) < 1:
            raise ScdealError(f"n_top must be at least 1, got {self.n_top!r}")
        if int(self.n_null) < 0:
            raise ScdealError(f"n_null must be 0 or more, got {self.n_null!r}")
        if not 0 < self.alpha <= 1:
            raise ScdealError(f"alpha must lie in (0, 1], got {self.alpha!r}")


@dataclass
class GeneScores:
    """Per-cell scores, the gene sets behind them, and the predicted-vs-truth comparison.

    Examples
    --------
    Made by :func:`gene_scores`; by hand:

    >>> GeneScores(pd.DataFrame(), pd.DataFrame(), pd.DataFrame()).config.n_null
    1000
    """

    scores: pd.DataFrame
    gene_sets: pd.DataFrame
    correlations: pd.DataFrame
    null: dict[str, np.ndarray] = field(default_factory=dict)
    config: GeneScoreConfig = field(default_factory=GeneScoreConfig)


def _grouping(labels: pd.Series, index: pd.Index, what: str) -> pd.Series:
    values = pd.to_numeric(pd.Series(labels).reindex(index).astype(object), errors="coerce")
    group = pd.Series(np.where(values == 1, "sensitive",
                               np.where(values == 0, "resistant", None)), index=index)
    counts = group.value_counts()
    if counts.get("sensitive", 0) < 2 or counts.get("resistant", 0) < 2:
        raise ScdealError(f"gene scores from {what} need at least 2 sensitive and 2 resistant "
                          f"cells, got {counts.get('sensitive', 0)} and "
                          f"{counts.get('resistant', 0)}")
    return group


def marker_genes(expr: AnnData, labels: pd.Series, config: GeneScoreConfig,
                 what: str = "labels") -> pd.DataFrame:
    """Top genes up in each group (1 = sensitive, 0 = resistant) with adjusted p < alpha.

    Runs ``scanpy.tl.rank_genes_groups(method='wilcoxon', tie_correct=True)`` (the test
    :func:`scdeal.tl.critical_genes.rank_attributions` runs through scipy; scanpy's works on
    sparse matrices in chunks) on a private copy of ``expr``'s matrix (cells with a missing label are left out). Returns columns direction, rank, gene,
    score, logfoldchange (scanpy's; meaningful only for log-normalised data), pvalue,
    pvalue_adj.
    """
    import scanpy as sc

    group = _grouping(labels, expr.obs_names, what)
    keep = group.notna().to_numpy()
    ad = AnnData(X=expr.X[keep], obs=pd.DataFrame(
        {"group": pd.Categorical(group[keep], categories=list(DIRECTIONS))},
        index=expr.obs_names[keep]), var=pd.DataFrame(index=expr.var_names))
    # Log-fold changes assume log data; for z-scores they are NaN (numpy would warn).
    with np.errstate(invalid="ignore", divide="ignore"):
        sc.tl.rank_genes_groups(ad, "group", method="wilcoxon", use_raw=False, tie_correct=True,
                                n_genes=min(config.n_top, ad.n_vars))
    rows = []
    for direction in DIRECTIONS:
        table = sc.get.rank_genes_groups_df(ad, group=direction)
        table = table.head(config.n_top)
        table = table[table["pvals_adj"] < config.alpha]
        for rank, row in enumerate(table.itertuples(index=False), start=1):
            rows.append({"direction": direction, "rank": rank, "gene": row.names,
                         "score": row.scores, "logfoldchange": row.logfoldchanges,
                         "pvalue": row.pvals, "pvalue_adj": row.pvals_adj})
    return pd.DataFrame(rows, columns=["direction", "rank", "gene", "score", "logfoldchange",
                                       "pvalue", "pvalue_adj"])


def score_cells(expr: AnnData, genes, config: GeneScoreConfig, seed: int | None = None
                ) -> np.ndarray:
    """``scanpy.tl.score_genes`` of ``genes`` for every cell, computed on a private AnnData."""
    import scanpy as sc

    genes = list(genes)
    if not genes:
        return np.full(expr.n_obs, np.nan)
    ad = AnnData(X=expr.X, obs=pd.DataFrame(index=expr.obs_names),
                 var=pd.DataFrame(index=expr.var_names))
    sc.tl.score_genes(ad, genes, ctrl_size=config.ctrl_size, n_bins=config.n_bins,
                      random_state=config.seed if seed is None else seed, use_raw=False)
    return ad.obs["score"].to_numpy(dtype=float)


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan"), float("nan")
    r, p = stats.pearsonr(x[ok], y[ok])
    return float(r), float(p)


def empirical_pvalue(observed: float, null: np.ndarray) -> float:
    """``(1 + #{null >= observed}) / (1 + n)``: never 0, exact for exchangeable draws.

    Examples
    --------
    >>> empirical_pvalue(0.5, np.array([0.1, 0.6, 0.5, 0.2]))
    0.6
    """
    null = np.asarray(null, dtype=float)
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or null.size == 0:
        return float("nan")
    return float((1 + np.sum(null >= observed)) / (1 + null.size))


def null_correlations(expr: AnnData, truth_score: np.ndarray, set_size: int,
                      config: GeneScoreConfig, seed: int) -> np.ndarray:
    """Pearson r between ``truth_score`` and the scores of ``n_null`` random gene sets."""
    rng = np.random.default_rng(seed)
    names = np.asarray(expr.var_names)
    out = np.empty(config.n_null)
    for i in range(config.n_null):
        genes = rng.choice(names, size=min(set_size, len(names)), replace=False)
        out[i] = _pearson(score_cells(expr, genes, config, seed=seed + 1 + i), truth_score)[0]
    return out


def gene_scores(adata: AnnData, label_key: str = "sens_label", truth_key: str | None = None,
                config: GeneScoreConfig | None = None, *, label_map: dict | None = None,
                key_added: str = "gene_scores") -> GeneScores:
    """Gene scores from predicted (and true) groups and their agreement.

    Parameters
    ----------
    adata
        Normalised expression, cells x genes (e.g. ``model.prepare_target(adata)`` with the
        predictions copied into its obs); the same matrix is used for both groupings.
    label_key
        obs column of the predicted label (1 = sensitive, 0 = resistant; ``model.predict``
        writes ``sens_label``).
    truth_key
        obs column of the true labels, or ``None``; cells with a missing label are left out of
        the truth ranking but still scored.
    config
        :class:`GeneScoreConfig`.
    label_map
        How the truth's values map to 1 / 0 (default: 1/0, sensitive/resistant and the like).
    key_added
        uns key of the gene sets and correlations (default ``gene_scores``; the key
        :func:`scdeal.pl.gene_score_regression` reads).

    Returns
    -------
    GeneScores
        ``scores``: per cell ``sensitive_score_pred``, ``resistant_score_pred`` (and ``_true``);
        ``gene_sets``: the genes with source (predicted/truth) and direction; ``correlations``:
        per direction the set sizes, Pearson r and its parametric p, the null's mean and SD,
        and the empirical p; ``null``: the null r values per direction.

        Written into ``adata``: ``obs['sensitive_score_pred']``, ``obs['resistant_score_pred']``
        (and, with ``truth_key``, ``obs['sensitive_score_true']``,
        ``obs['resistant_score_true']``; these names do not depend on ``key_added``) and
        ``uns[key_added]``: a dict of ``gene_sets``, ``correlations``, ``null`` and ``params``.

    ``gene_scores(expr, predicted, truth, config)`` (label Series instead of obs keys) is
    deprecated and will be removed in scdeal 0.3; it writes nothing into ``expr``.

    Examples
    --------
    In use: ``gene_scores(expr, "sens_label", "response")`` on the prepared expression with the
    predictions in its obs. On 60 synthetic cells where 10 genes are up in each true group and
    the predictions swap two cells:

    >>> rng = np.random.default_rng(0)
    >>> truth = np.r_[np.ones(30, int), np.zeros(30, int)]
    >>> X = rng.normal(size=(60, 120)).astype(np.float32)
    >>> X[:30, :10] += 2
    >>> X[30:, 10:20] += 2
    >>> adata = AnnData(X, obs=pd.DataFrame({"response": truth, "sens_label": truth},
    ...                                     index=[f"c{i}" for i in range(60)]),
    ...                 var=pd.DataFrame(index=[f"G{i}" for i in range(120)]))
    >>> adata.obs.iloc[[0, 30], 1] = [0, 1]
    >>> res = gene_scores(adata, "sens_label", "response", GeneScoreConfig(n_top=10, n_null=20))
    >>> res.correlations.set_index("direction")["pearson_r"].gt(0.9).to_dict()
    {'sensitive': True, 'resistant': True}
    >>> "sensitive_score_pred" in adata.obs, sorted(adata.uns["gene_scores"])
    (True, ['correlations', 'gene_sets', 'null', 'params'])
    """
    if not isinstance(label_key, str):
        warn_deprecated("scdeal.tl.gene_scores(expr, predicted, truth, config)",
                        "scdeal.tl.gene_scores(adata, label_key, truth_key, config) with the "
                        "labels in adata.obs")
        return _gene_scores(adata, label_key, truth_key, config)
    from ..data.labels import binary_labels

    if label_key not in adata.obs:
        raise ScdealError(f"adata.obs has no predicted-label column {label_key!r}; run "
                          "model.predict(adata) first (and copy its obs onto prepared data)")
    truth = None
    if truth_key is not None:
        if truth_key not in adata.obs:
            raise ScdealError(f"adata.obs has no true-label column {truth_key!r}; give an obs "
                              "column as truth_key=")
        truth = binary_labels(adata.obs, truth_key, label_map)
    result = _gene_scores(adata, adata.obs[label_key], truth, config)
    for column in result.scores.columns:
        adata.obs[column] = result.scores[column]
    adata.uns[key_added] = {"gene_sets": result.gene_sets, "correlations": result.correlations,
                            "null": dict(result.null), "params": asdict(result.config)}
    return result


def _gene_scores(expr: AnnData, predicted: pd.Series, truth: pd.Series | None,
                 config: GeneScoreConfig | None) -> GeneScores:
    config = config or GeneScoreConfig()
    scores = pd.DataFrame(index=expr.obs_names)
    sets = []
    sources = [("pred", predicted, "predicted labels")]
    if truth is not None:
        sources.append(("true", truth, "true labels"))
    for suffix, labels, what in sources:
        genes = marker_genes(expr, labels, config, what)
        genes.insert(0, "source", "predicted" if suffix == "pred" else "truth")
        sets.append(genes)
        for direction in DIRECTIONS:
            chosen = genes.loc[genes["direction"] == direction, "gene"]
            if chosen.empty:
                log.warning("no %s genes with adjusted p < %g from the %s; their score is NaN",
                            direction, config.alpha, what)
            scores[f"{direction}_score_{suffix}"] = score_cells(expr, chosen, config)
    non_empty = [t for t in sets if len(t)]
    gene_sets = (pd.concat(non_empty, ignore_index=True) if non_empty
                 else sets[0].iloc[:0].copy())

    rows, null = [], {}
    if truth is not None:
        for k, direction in enumerate(DIRECTIONS):
            pred = scores[f"{direction}_score_pred"].to_numpy()
            true = scores[f"{direction}_score_true"].to_numpy()
            size = int(((gene_sets["source"] == "predicted")
                        & (gene_sets["direction"] == direction)).sum())
            r, p = _pearson(pred, true)
            values = (null_correlations(expr, true, size, config, config.seed + 100_000 * (k + 1))
                      if config.n_null and size and np.isfinite(r) else np.array([]))
            null[direction] = values
            rows.append({
                "direction": direction, "n_genes_pred": size,
                "n_genes_true": int(((gene_sets["source"] == "truth")
                                     & (gene_sets["direction"] == direction)).sum()),
                "n_cells": int(np.sum(np.isfinite(pred) & np.isfinite(true))),
                "pearson_r": r, "pearson_p": p, "n_null": int(values.size),
                "null_mean": float(np.nanmean(values)) if values.size else float("nan"),
                "null_sd": float(np.nanstd(values)) if values.size else float("nan"),
                "p_empirical": empirical_pvalue(r, values)})
    correlations = pd.DataFrame(rows, columns=[
        "direction", "n_genes_pred", "n_genes_true", "n_cells", "pearson_r", "pearson_p",
        "n_null", "null_mean", "null_sd", "p_empirical"])
    return GeneScores(scores, gene_sets, correlations, null, config)
