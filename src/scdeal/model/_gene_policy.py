"""The data policy of a fit and of prediction: which cells train (a seeded sample beyond
``max_training_cells``), on which genes (shared with GDSC, the most variable beyond
``max_genes``), preprocessed and standardised how. Fixed at fit time and applied to every
cell to predict on its own."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..data.gdsc import BulkData
from ..data.preprocess import prediction_config, preprocess_target
from ..errors import ScdealError
from . import prepare as prep

log = logging.getLogger(__name__)

# Fraction of the model's target genes a dataset must have to be predicted by it.
MIN_GENE_FRACTION = 0.9


def training_data(model, adata: AnnData, bulk: BulkData, gene_ids: str,
                   keep: np.ndarray | None = None):
    """GDSC expression and the standardised cells on the model's gene spaces (sets
    ``gene_ids``, ``bulk_genes``, ``target_genes`` and ``target_scaler``). ``keep``:
    positions of cells that must be in the training sample (labelled cells)."""
    cfg = model.config
    model.gene_ids = gene_ids
    bulk_expr, bulk_gene_summary = prep.bulk_expression_on_symbols(bulk)
    rows = prep.training_rows(adata.n_obs, cfg.max_training_cells, cfg.seed, keep=keep)
    model.training_sample = None
    if rows is not None:
        log.info("training on a random %d of the %d cells (max_training_cells); every "
                 "cell is predicted", len(rows), adata.n_obs)
        model.training_sample = {"cells": len(rows), "of": int(adata.n_obs)}
        adata = adata[rows]
    target = prepare_target(model, adata)
    model.normalization_genes = target.uns["scdeal_preprocess"].pop("genes", None)

    # Gene spaces.
    model.gene_selection = None
    if cfg.gene_space == "shared":
        target_genes = set(target.var_names)
        shared = [g for g in bulk_expr.columns if g in target_genes]
        if len(shared) < cfg.min_shared_genes:
            raise ScdealError(
                f"the target shares only {len(shared)} genes with GDSC (need "
                f"{cfg.min_shared_genes}); check --gene-ids or use gene_space='separate'")
        if cfg.max_genes is not None and len(shared) > cfg.max_genes:
            shared, how = prep.most_variable_genes(target, shared, cfg.max_genes, bulk_expr)
            model.gene_selection = {"n_shared": len(set(target.var_names) &
                                                   set(bulk_expr.columns)),
                                   "kept": len(shared), "how": how}
            log.info("kept %d of the genes shared with GDSC (max_genes): %s",
                     len(shared), how)
        model.bulk_genes = model.target_genes = shared
    else:
        # Measured in benchmarks/README.md: nothing anchors the direction of the cell
        # embedding to the bulk one, and rankings came out inverted (PLX4720 AUROC 0.01).
        log.warning("gene_space='separate' (the paper's design): the cells' predictions may "
                    "come out inverted; check them against known sensitive cells, or use "
                    "the default gene_space='shared'")
        model.bulk_genes = list(bulk_expr.columns)
        model.target_genes = list(target.var_names)
    bulk_expr = bulk_expr[model.bulk_genes]

    # Target cells: standardised over all of them (no labels involved), block by block
    # when used (a sparse matrix stays sparse: atlas-sized targets fit in memory), or
    # once for the whole fit when that is small (CellRows.held_densely).
    X = target[:, model.target_genes].X
    X = sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X) else prep.dense_float32(X)
    prep.check_finite(X, "the target expression matrix")
    if X.shape[0] < 6:
        raise ScdealError(f"the target has {X.shape[0]} cells after preprocessing; at "
                          "least 6 are needed to train")
    model.target_scaler = prep.Standardizer.fit(X)
    return (bulk_expr, bulk_gene_summary, target,
            prep.CellRows(X, model.target_scaler).held_densely())


def prepare_target(model, adata: AnnData, *, predicting: bool = False,
                   gene_ids: str | None = None) -> AnnData:
    """:meth:`scdeal.ScDEAL.prepare_target` (documented there)."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ScdealError(f"the target is empty ({adata.n_obs} cells x {adata.n_vars} genes)")
    config = model.config.preprocess
    if predicting:
        config = prediction_config(config, model.training.get("preprocess") or {})
    target = prep.target_on_symbols(adata, gene_ids or model.gene_ids, config.input_kind)
    return preprocess_target(target, config, copy=False,
                             genes=model.normalization_genes if predicting else None)


def target_rows(model, adata: AnnData, *, gene_ids: str | None = None,
                layer: str | None = None) -> tuple[prep.CellRows, pd.Index]:
    """The cells to predict on the model's genes (preprocessed as at fit time, each cell
    alone: :meth:`prepare_target` with ``predicting=True``), standardised block by block
    (sparse input stays sparse), and the obs names they cover. ``layer``: read the values
    from ``adata.layers[layer]`` instead of ``X``."""
    if layer is not None:
        if layer not in adata.layers:
            raise ScdealError(f"layer {layer!r} is not in the cells' layers "
                              f"({list(adata.layers)}); name one of them or leave it out")
        adata = AnnData(adata.layers[layer], obs=pd.DataFrame(index=adata.obs_names),
                        var=pd.DataFrame(index=adata.var_names))
    target = prepare_target(model, adata, predicting=True, gene_ids=gene_ids)
    X = prep.align_genes(target, model.target_genes, min_fraction=MIN_GENE_FRACTION,
                         what="the target", keep_sparse=True)
    missing = prep.absent_genes(target, model.target_genes)
    if missing.any():
        log.warning("%d of the model's %d genes are absent from the target; they are set "
                    "to the training mean", int(missing.sum()), len(model.target_genes))
    if not sp.issparse(X):
        X[:, missing] = 0.0  # any finite value: the column is zeroed after scaling
    prep.check_finite(X, "the target expression matrix")
    return prep.CellRows(X, model.target_scaler, zero_columns=np.flatnonzero(missing)
                         if missing.any() else None), target.obs_names


def known_positions(labels: pd.Series, names: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Positions among the preprocessed cells ``names`` of the labelled cells of ``labels``
    (1.0/0.0/NaN by obs name), and their labels; refuses labelled cells that preprocessing
    removed."""
    known = labels.dropna()
    pos = names.get_indexer(known.index)
    lost = int((pos < 0).sum())
    if lost:
        raise ScdealError(
            f"{lost} of the {len(known)} labelled cells were removed by preprocessing (quality "
            "control, e.g. fewer than min_genes expressed genes); lower "
            "preprocess.min_genes or drop the labels of those cells")
    order = np.argsort(pos)
    return pos[order], known.to_numpy()[order].astype(np.int64)
