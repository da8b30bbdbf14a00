"""Prediction for datasets larger than memory: a backed ``.h5ad`` read in chunks of cells.

Each chunk goes through the same steps as :meth:`ScDEAL.predict` (gene ids -> symbols, the
configured preprocessing, the model's scaler, the network) with two differences, both because
they are dataset-level decisions that a chunk cannot make alone:

- the value kind (counts / normalised / ...) is detected once, on the first chunk, and then
  fixed for every chunk;
- genes are not filtered by the number of cells expressing them (``min_cells``); per-cell QC
  (``min_genes``, mitochondrial fraction) still applies.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..data.values import detect_value_kind
from ..errors import ScdealError
from .predictions import prediction_columns


def predict_backed(model, path: str | Path, *, chunk_size: int = 20000,
                   embedding: bool = False, pretransfer: bool = False,
                   key_prefix: str = "") -> AnnData:
    """Predict every cell of the ``.h5ad`` file at ``path`` without loading it whole.

    Returns an AnnData with the same ``obs_names`` and no genes, holding
    ``obs[prefix+'sens_preds']``, ``'rest_preds'``, ``'sens_label'``, ``'sens_preds_sd'``,
    ``'sens_uncertain'`` (with ``pretransfer=True`` also ``'sens_preds_pret'`` and
    ``'sens_label_pret'``; ``obsm[prefix+'X_scdeal']`` when ``embedding=True``). Peak memory
    is set by ``chunk_size``, not by the number of cells.
    """
    backed = _open_backed(path)
    original = model.config
    try:
        n = backed.n_obs
        probs = np.full((len(model.members), n), np.nan, dtype=np.float32)
        probs_pre = np.full_like(probs, np.nan) if pretransfer else None
        emb = np.full((n, original.latent_dim), np.nan, dtype=np.float32) if embedding else None
        var = backed.var.copy()
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            X = backed.X[start:stop]
            chunk = AnnData(X=X, obs=pd.DataFrame(index=backed.obs_names[start:stop]), var=var)
            if start == 0:
                kind = original.preprocess.input_kind
                if kind == "auto":
                    kind = detect_value_kind(chunk.X)
                model.config = original.replace(preprocess=dataclasses.replace(
                    original.preprocess, input_kind=kind, min_cells=0))
            Xs, names = model.target_rows(chunk)
            pos = start + chunk.obs_names.get_indexer(names)
            p, pre, e = model._predict_members(Xs, pretransfer=pretransfer, embedding=embedding)
            probs[:, pos] = p
            if pretransfer:
                probs_pre[:, pos] = pre
            if emb is not None:
                emb[pos] = e
    finally:
        model.config = original
        backed.file.close()
    out = AnnData(obs=pd.DataFrame(index=backed.obs_names.copy()))
    for name, values in prediction_columns(probs, probs_pre).items():
        out.obs[f"{key_prefix}{name}"] = values
    if emb is not None:
        out.obsm[f"{key_prefix}X_scdeal"] = emb
    return out


def read_rows(path: str | Path, rows: np.ndarray | None, *, block: int = 50_000) -> AnnData:
    """The cells at positions ``rows`` (sorted; ``None``: all) of the ``.h5ad`` at ``path``,
    read ``block`` cells at a time: the whole matrix is never in memory at once."""
    backed = _open_backed(path)
    try:
        n = backed.n_obs
        rows = np.arange(n) if rows is None else np.asarray(rows)
        parts = []
        for start in range(0, n, block):
            stop = min(start + block, n)
            inside = rows[(rows >= start) & (rows < stop)] - start
            if len(inside):
                X = backed.X[start:stop]
                parts.append(X[inside])
        X = sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)
        return AnnData(X, obs=backed.obs.iloc[rows].copy(), var=backed.var.copy())
    finally:
        backed.file.close()


def file_obs(path: str | Path) -> pd.DataFrame:
    """``obs`` of the ``.h5ad`` at ``path`` (reads no matrix)."""
    backed = _open_backed(path)
    try:
        return backed.obs.copy()
    finally:
        backed.file.close()


def annotate_copy(source: str | Path, dest: str | Path, *, obs: pd.DataFrame,
                  obsm: dict[str, np.ndarray], uns: dict) -> None:
    """Copy the ``.h5ad`` ``source`` to ``dest`` with ``obs`` replaced and ``obsm``/``uns``
    keys added, without reading its matrix (the annotated file of a backed run)."""
    import shutil

    import h5py
    from anndata.io import write_elem

    shutil.copyfile(source, dest)
    with h5py.File(dest, "a") as handle:
        del handle["obs"]
        write_elem(handle, "obs", obs)
        for group, values in (("obsm", obsm), ("uns", uns)):
            if group not in handle:
                write_elem(handle, group, {})
            for key, value in values.items():
                if key in handle[group]:
                    del handle[group][key]
                write_elem(handle[group], key, value)


def _open_backed(path: str | Path) -> AnnData:
    path = Path(path)
    if path.suffix.lower() != ".h5ad" or not path.is_file():
        raise ScdealError(f"{path} is not an .h5ad file; reading in blocks (--backed) needs "
                          ".h5ad (convert other formats with anndata first)")
    try:
        return anndata.read_h5ad(path, backed="r")
    except OSError as exc:
        raise ScdealError(f"{path} is not a readable .h5ad file ({exc})") from exc
