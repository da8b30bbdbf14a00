"""What a target's ``X`` holds (counts, normalised, log-normalised, scaled) and a summary of a
target for ``scdeal data info``."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ..errors import ScdealError
from .genes import detect_id_type

ValueKind = Literal["counts", "normalized", "log_normalized", "scaled"]

_LOG_MAX = 50.0  # log1p(CPM) tops out near 14, log2(TPM+1) near 20; TPM/FPKM reach thousands
_N_SAMPLE_ROWS = 1000


def detect_value_kind(X) -> ValueKind:
    """Tell counts, normalised, log-normalised and scaled values apart.

    Up to 1,000 evenly spaced rows are checked (dense or sparse), finite values only:

    - ``scaled``: any negative value (z-scored or centred data);
    - ``counts``: otherwise, every value an integer;
    - ``normalized``: non-integer and the row sums equal (relative spread < 0.1%, i.e.
      normalised to a total, CPM/TPM over all genes), or a maximum above 50 (TPM/FPKM);
    - ``log_normalized``: non-integer, row sums differ, maximum at most 50 (log1p of
      CPM is at most ~14, log2(TPM + 1) ~20).

    Declare the kind (``PreprocessConfig.input_kind``) where these rules do not fit.

    Examples
    --------
    >>> detect_value_kind(np.array([[0, 3], [1, 0]]))
    'counts'
    """
    n_rows = X.shape[0]
    rows = np.unique(np.linspace(0, max(n_rows - 1, 0), min(n_rows, _N_SAMPLE_ROWS)).astype(int))
    sub = X[rows] if n_rows else X
    if sp.issparse(sub):
        sub = sp.csr_matrix(sub)
        values = sub.data
        row_sums = np.asarray(sub.sum(axis=1)).ravel()
    else:
        sub = np.asarray(sub)
        values = sub.ravel()
        row_sums = np.nansum(np.where(np.isfinite(sub), sub, 0), axis=1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "counts"
    if values.min() < 0:
        return "scaled"
    if np.issubdtype(values.dtype, np.integer) or np.all(np.mod(values, 1) == 0):
        return "counts"
    if len(row_sums) > 1 and row_sums.mean() > 0 and row_sums.std() / row_sums.mean() < 1e-3:
        return "normalized"
    return "log_normalized" if values.max() <= _LOG_MAX else "normalized"


def summarize_target(adata: AnnData) -> dict:
    """Facts about a target for ``scdeal data info``.

    Returns
    -------
    dict
        ``n_cells``, ``n_genes``, ``value_kind`` (:func:`detect_value_kind`),
        ``gene_id_type`` (:func:`scdeal.data.genes.detect_id_type`, the detector
        ``fit(gene_ids="auto")`` uses; ``"undetermined: ..."`` with the reason when the ids
        are mixed),
        ``candidate_label_columns`` (obs columns with 2-10 distinct values -> value counts),
        ``sparsity`` (fraction of zeros in X), ``value_range`` (min, max).

    Examples
    --------
    >>> import pandas as pd
    >>> from anndata import AnnData
    >>> cells = AnnData(np.array([[0.0, 3.0], [1.0, 0.0]], dtype=np.float32),
    ...                 var=pd.DataFrame(index=["7157", "1956"]))
    >>> info = summarize_target(cells)
    >>> info["value_kind"], info["gene_id_type"], info["sparsity"]
    ('counts', 'entrez', 0.5)
    """
    X = adata.X
    n_values = adata.n_obs * adata.n_vars
    if sp.issparse(X):
        nonzero = int(np.count_nonzero(X.data))
        low, high = (float(X.min()), float(X.max())) if n_values else (0.0, 0.0)
    else:
        nonzero = int(np.count_nonzero(X))
        low, high = (float(np.min(X)), float(np.max(X))) if n_values else (0.0, 0.0)
    try:
        gene_id_type = detect_id_type(adata.var_names)
    except ScdealError as err:
        gene_id_type = f"undetermined: {err}"
    candidates = {}
    for column in adata.obs.columns:
        counts = adata.obs[column].value_counts(dropna=True)
        if 2 <= len(counts) <= 10:
            candidates[str(column)] = {str(k): int(v) for k, v in counts.items()}
    return {
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "value_kind": detect_value_kind(X),
        "gene_id_type": gene_id_type,
        "candidate_label_columns": candidates,
        "sparsity": round(1 - nonzero / n_values, 4) if n_values else 0.0,
        "value_range": [low, high],
    }
