"""Batched inference of a fitted :class:`~scdeal.ScDEAL`'s members."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from . import prepare as prep
from .predictions import prediction_columns

PREDICT_CHUNK = prep.BLOCK_ROWS


def predict_members(
    model, X: np.ndarray | prep.CellRows, *, pretransfer: bool = True,
    embedding: bool = False, stacked: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Each member's P(sensitive) of standardised cells, after and (optionally) before the
    transfer (members x cells), and the first member's embedding, in blocks of cells.
    After the transfer, a fit with labelled cells combines each member's probability with
    the classifier of the labelled cells (``stacked=False``: the transfer's alone).

    The ensemble's probability is the members' mean (what :class:`EnsembleNet` returns).
    Inference uses torch's default thread count: large batched products gain from threads
    (``num_threads`` only limits training).
    """
    if isinstance(X, prep.CellRows):
        blocks = X.blocks(PREDICT_CHUNK)
    else:
        blocks = (X[start:start + PREDICT_CHUNK] for start in range(0, len(X), PREDICT_CHUNK))
    post, pre, embs = [], [], []
    device = next(model.members[0].target_net.parameters()).device
    with torch.no_grad():
        for block in blocks:
            x = torch.as_tensor(block, device=device)
            post.append([])
            pre.append([])
            stack = model.labelled_stack if stacked else None
            for i, member in enumerate(model.members):
                net = member.target_net.eval()
                p = net.predict_proba(x).cpu().numpy()
                post[-1].append(p if stack is None else stack.combine(p, block))
                if pretransfer:
                    pre[-1].append(member.pretransfer_net.eval().predict_proba(x).cpu().numpy())
                if embedding and i == 0:
                    embs.append(net.embed(x).cpu().numpy())
    n_members = len(model.members)

    def stack(parts):
        if not parts:
            return np.zeros((n_members, 0), dtype=np.float32)
        return np.concatenate([np.stack(p) for p in parts], axis=1)

    return (stack(post), stack(pre) if pretransfer else None,
            np.concatenate(embs) if embedding and embs else None)


def annotate(adata: AnnData, names: pd.Index, post: np.ndarray, pre: np.ndarray,
             emb: np.ndarray, key_prefix: str = "") -> dict[str, np.ndarray]:
    """Write the prediction columns of the cells ``names`` (members x cells ``post``/``pre``,
    cells x latent ``emb``) into ``adata.obs``/``obsm`` under ``key_prefix``; cells not in
    ``names`` (removed by QC) get NaN. Returns the columns."""
    pos = adata.obs_names.get_indexer(names)

    def full(values: np.ndarray) -> np.ndarray:
        arr = np.full((adata.n_obs, *values.shape[1:]), np.nan, dtype=np.float32)
        arr[pos] = values
        return arr

    columns = prediction_columns(full(post.T).T, full(pre.T).T)
    for name, values in columns.items():
        adata.obs[f"{key_prefix}{name}"] = values
    adata.obsm[f"{key_prefix}X_scdeal"] = full(emb)
    return columns
