"""Bulk-only baselines: train a classifier on GDSC cell lines, apply it to the cells.

The bulk side uses the same expression (on HGNC symbols) and the same binary labels as scDEAL
(:meth:`scdeal.data.BulkData.labels_for` with the configuration's release, metric and
binarisation), but ALL labelled lines: there is no model selection to hold lines out for. The
target goes through the same gene harmonisation and preprocessing as scDEAL's
(:func:`scdeal.data.genes.harmonize_var_names`, :func:`scdeal.data.preprocess.preprocess_target`).
Only genes present in both are used, in the bulk's order, and each domain is standardised per
gene over its own samples, which removes per-gene platform offsets without any labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from anndata import AnnData

from ..data.gdsc import BulkData
from ..data.preprocess import preprocess_target
from ..errors import ScdealError
from ..model import ScDealConfig
from ..model.prepare import (
    Standardizer,
    bulk_expression_on_symbols,
    check_finite,
    dense_float32,
    resample,
    target_on_symbols,
)
from .methods import Baseline, ShotsBaseline


@dataclass
class DomainMatrices:
    """Bulk training data and target cells on the genes both share, each standardised."""

    X_bulk: np.ndarray  # labelled lines x shared genes
    y_bulk: np.ndarray  # 1 sensitive, 0 resistant
    X_target: np.ndarray  # cells (after preprocessing) x shared genes
    cells: pd.Index  # obs names of the rows of X_target
    genes: list[str]


def domain_matrices(bulk: BulkData, drug: str, target: AnnData, *, gene_ids: str,
                    config: ScDealConfig, min_shared_genes: int | None = None) -> DomainMatrices:
    """Bulk lines labelled for ``drug`` and the target cells, on shared genes, standardised.

    Parameters
    ----------
    bulk
        GDSC data.
    drug
        Drug name (GDSC spelling or close to it).
    target
        Target cells x genes; only ``X``, ``obs_names`` and ``var_names`` are read.
    gene_ids
        Identifier type of ``target.var_names``.
    config
        Supplies the bulk labels (release, metric, binarisation), the target preprocessing and
        ``min_shared_genes`` (unless given).

    Examples
    --------
    Cells simulated from 6 GDSC lines (their genes are GDSC's, as symbols):

    >>> from scdeal.data import load_gdsc
    >>> from scdeal.data.simulate import demo_target
    >>> bulk = load_gdsc()                                               # doctest: +GDSC_DATA
    >>> cells, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=5)
    >>> m = domain_matrices(bulk.without_lines(held), "Gefitinib", cells, gene_ids="symbol",
    ...                     config=ScDealConfig())
    >>> m.X_bulk.shape[1] == m.X_target.shape[1], len(m.X_target)
    (True, 30)
    """
    expression, _ = bulk_expression_on_symbols(bulk)
    binarized, _ = bulk.labels_for(drug, release=config.release, metric=config.metric,
                                   method=config.binarization)
    labels = binarized.labels.dropna().astype(int)
    labels = labels[labels.index.isin(expression.index)]
    if labels.nunique() < 2:
        raise ScdealError(f"{bulk.resolve_drug(drug)} has labelled bulk lines of one class only; "
                          "a classifier cannot be trained")
    prepared = preprocess_target(target_on_symbols(target, gene_ids, config.preprocess.input_kind),
                                 config.preprocess,
                                 copy=False)
    target_genes = set(prepared.var_names)
    genes = [g for g in expression.columns if g in target_genes]
    needed = config.min_shared_genes if min_shared_genes is None else min_shared_genes
    if len(genes) < needed:
        raise ScdealError(f"the target shares only {len(genes)} genes with GDSC (need {needed}); "
                          "check the case's gene_ids")
    X_bulk = expression.loc[labels.index, genes].to_numpy(np.float32)
    X_target = dense_float32(prepared[:, genes].X)
    check_finite(X_target, "the target expression matrix")
    return DomainMatrices(
        X_bulk=Standardizer.fit(X_bulk).transform(X_bulk), y_bulk=labels.to_numpy(),
        X_target=Standardizer.fit(X_target).transform(X_target),
        cells=prepared.obs_names, genes=genes)


def fit_predict_baseline(baseline: Baseline, matrices: DomainMatrices, seed: int) -> pd.Series:
    """Train ``baseline`` on the bulk lines; probability that each target cell is sensitive.

    Examples
    --------
    With ``m`` from :func:`domain_matrices`, or a small stand-in:

    >>> from scdeal.benchmark.methods import METHODS
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.ones(20, int), np.zeros(20, int)]
    >>> m = DomainMatrices(X_bulk=rng.normal(size=(40, 5)) + y[:, None], y_bulk=y,
    ...                    X_target=rng.normal(size=(6, 5)) + [[2], [2], [2], [-2], [-2], [-2]],
    ...                    cells=pd.Index([f"c{i}" for i in range(6)]),
    ...                    genes=[f"G{i}" for i in range(5)])
    >>> prob = fit_predict_baseline(METHODS["logreg"], m, seed=0)
    >>> bool((prob.iloc[:3] > 0.5).all() and (prob.iloc[3:] < 0.5).all())
    True
    """
    from sklearn.utils.class_weight import compute_sample_weight
    from threadpoolctl import threadpool_limits

    estimator = baseline.make(seed)
    X, y = matrices.X_bulk, matrices.y_bulk
    with threadpool_limits(baseline.openmp_threads, user_api="openmp"):
        if baseline.balance == "sample_weight":
            estimator.fit(X, y, sample_weight=compute_sample_weight("balanced", y))
        elif baseline.balance == "oversample":
            estimator.fit(*resample(X, y, "upsampling", seed))
        else:
            estimator.fit(X, y)
    column = list(estimator.classes_).index(1)
    prob = estimator.predict_proba(matrices.X_target)[:, column]
    return pd.Series(prob.astype(float), index=matrices.cells)


def fit_predict_shots(method: ShotsBaseline, matrices: DomainMatrices, shots: pd.Series,
                      seed: int) -> pd.Series:
    """Train ``method`` on the labelled cells ``shots`` (1.0/0.0 by obs name; with the bulk
    lines when ``method.with_bulk``); probability that each target cell is sensitive.

    The cells are rows of ``matrices.X_target`` (standardised over every target cell, no
    labels involved). With the bulk lines, each domain's samples carry half of the total
    weight, classes balanced within each domain (``compute_sample_weight("balanced")``).

    Examples
    --------
    >>> from scdeal.benchmark.methods import METHODS
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.ones(20, int), np.zeros(20, int)]
    >>> cells = pd.Index([f"c{i}" for i in range(6)])
    >>> m = DomainMatrices(X_bulk=rng.normal(size=(40, 5)) + y[:, None], y_bulk=y,
    ...                    X_target=rng.normal(size=(6, 5)) - [[2], [2], [2], [-2], [-2], [-2]],
    ...                    cells=cells, genes=[f"G{i}" for i in range(5)])
    >>> shots = pd.Series([1.0, 0.0], index=["c0", "c3"])   # the cells go against the bulk
    >>> prob = fit_predict_shots(METHODS["logreg_shots"], m, shots, seed=0)
    >>> bool((prob.iloc[:3] > 0.5).all() and (prob.iloc[3:] < 0.5).all())
    True
    """
    from sklearn.utils.class_weight import compute_sample_weight

    known = shots.dropna()
    pos = matrices.cells.get_indexer(known.index)
    if (pos < 0).any():
        raise ScdealError(f"{int((pos < 0).sum())} of the {len(known)} labelled cells were "
                          "removed by preprocessing; they cannot be trained on")
    X_cells, y_cells = matrices.X_target[pos], known.to_numpy().astype(int)
    estimator = method.make(seed)
    if not method.with_bulk:
        if len(np.unique(y_cells)) < 2:
            raise ScdealError(f"{method.name} learns from labelled cells of both classes; "
                              "use --shots K with K >= 1")
        estimator.fit(X_cells, y_cells)
    else:
        X, y = matrices.X_bulk, matrices.y_bulk
        weight = compute_sample_weight("balanced", y)  # sums to the number of lines
        if len(y_cells):
            cell_weight = compute_sample_weight("balanced", y_cells) * len(y) / len(y_cells)
            X, y = np.vstack([X, X_cells]), np.concatenate([y, y_cells])
            weight = np.concatenate([weight, cell_weight])
        estimator.fit(X, y, sample_weight=weight)
    column = list(estimator.classes_).index(1)
    prob = estimator.predict_proba(matrices.X_target)[:, column]
    return pd.Series(prob.astype(float), index=matrices.cells)
