"""Prediction for datasets larger than memory: a backed ``.h5ad`` read in chunks of cells.

Each chunk goes through the steps of :meth:`ScDEAL.predict` (gene ids -> symbols, the
preprocessing fixed at fit time, the model's scaler, the network); since those treat every
cell on its own, a cell's prediction does not depend on the chunk it falls in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from ..data.backed import open_backed
from .predictions import prediction_columns


def predict_backed(model, path: str | Path, *, chunk_size: int = 20000,
                   embedding: bool = False, pretransfer: bool = False,
                   key_prefix: str = "", gene_ids: str | None = None) -> AnnData:
    """Predict every cell of the ``.h5ad`` file at ``path`` without loading it whole.

    Returns an AnnData with the same ``obs_names`` and no genes, holding
    ``obs[prefix+'sens_preds']``, ``'rest_preds'``, ``'sens_label'``, ``'sens_preds_sd'``,
    ``'sens_uncertain'`` (with ``pretransfer=True`` also ``'sens_preds_pret'`` and
    ``'sens_label_pret'``; ``obsm[prefix+'X_scdeal']`` when ``embedding=True``). Peak memory
    is set by ``chunk_size``, not by the number of cells.
    """
    backed = open_backed(path)
    try:
        n = backed.n_obs
        probs = np.full((len(model.members), n), np.nan, dtype=np.float32)
        probs_pre = np.full_like(probs, np.nan) if pretransfer else None
        emb = (np.full((n, model.config.latent_dim), np.nan, dtype=np.float32) if embedding
               else None)
        var = backed.var.copy()
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            X = backed.X[start:stop]
            chunk = AnnData(X=X, obs=pd.DataFrame(index=backed.obs_names[start:stop]), var=var)
            Xs, names = model.target_rows(chunk, gene_ids=gene_ids)
            pos = start + chunk.obs_names.get_indexer(names)
            p, pre, e = model._predict_members(Xs, pretransfer=pretransfer, embedding=embedding)
            probs[:, pos] = p
            if pretransfer:
                probs_pre[:, pos] = pre
            if emb is not None:
                emb[pos] = e
    finally:
        backed.file.close()
    out = AnnData(obs=pd.DataFrame(index=backed.obs_names.copy()))
    for name, values in prediction_columns(probs, probs_pre).items():
        out.obs[f"{key_prefix}{name}"] = values
    if emb is not None:
        out.obsm[f"{key_prefix}X_scdeal"] = emb
    return out


def read_training_cells(path: str | Path, max_cells: int, seed: int, *,
                        labelled: str | None = None,
                        label_map: dict | None = None) -> tuple[AnnData, dict | None]:
    """The cells a fit given a file trains on, and what sample of the file they are.

    All of them (:func:`scdeal.data.singlecell.read_target`, any format), unless the file is
    an ``.h5ad`` whose matrix would not fit comfortably in memory (:func:`reads_backed`, said
    in one log line): then a seeded random sample of at most ``max_cells`` cells
    (:func:`scdeal.model.prepare.training_rows`, the cells labelled in ``obs[labelled]``
    always in it), read a block of cells at a time. The second value is ``{"cells": ...,
    "of": ...}`` for a sample, else ``None``.
    """
    import logging

    from ..data.backed import file_obs, read_rows, reads_backed
    from ..data.singlecell import read_target
    from .prepare import cell_labels, training_rows

    reason = reads_backed(path)
    if reason is None:
        return read_target(path, obs_columns=[labelled] if labelled else []), None
    logging.getLogger(__name__).info("scdeal: %s", reason)
    obs = file_obs(path)
    keep = None
    if labelled is not None:
        keep = np.flatnonzero(cell_labels(obs, labelled, label_map).notna().to_numpy())
    rows = training_rows(len(obs), max_cells, seed, keep=keep)
    sample = None if rows is None else {"cells": len(rows), "of": len(obs)}
    return read_rows(path, rows), sample
