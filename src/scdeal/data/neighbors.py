"""``scanpy.pp.neighbors`` that also works on large datasets with SciPy >= 1.17.

From 8,192 cells on, scanpy (1.11) builds the kNN graph with pynndescent's transformer, whose
output is a ``scipy.sparse.csr_array``; scanpy then calls ``getnnz(axis=1)`` on it, which
SciPy 1.17 removed from sparse arrays (``AttributeError: 'csr_array' object has no attribute
'getnnz'``). Below that size scanpy computes exact distances itself and is not affected. For
large inputs we hand scanpy the same transformer, with the same settings scanpy would choose,
returning a ``csr_matrix``; the graph is the one scanpy would build.

scanpy's connectivities come from UMAP's ``fuzzy_simplicial_set``, whose two numba kernels
are compiled afresh in every process (about 5 s on a laptop core, longer than the whole
neighbour search on 100k cells). We switch on numba's own on-disk cache for them
(``Dispatcher.enable_caching``; numba's usual cache folder, or ``NUMBA_CACHE_DIR``), so only
the first process after installing compiles them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

# scanpy uses exact (brute-force) euclidean distances below this many cells.
PYNNDESCENT_FROM = 8192


def _matrix_output_transformer(n_obs: int, n_neighbors: int, random_state: int):
    from pynndescent import PyNNDescentTransformer
    from scanpy import settings

    class _CsrMatrixNNDescent(PyNNDescentTransformer):
        def transform(self, X=None):
            return sp.csr_matrix(super().transform(X))

        def fit_transform(self, X, y=None, **fit_params):
            return sp.csr_matrix(super().fit_transform(X, y, **fit_params))

    # scanpy's (i.e. UMAP's) defaults for this size
    return _CsrMatrixNNDescent(
        n_neighbors=n_neighbors, metric="euclidean", random_state=random_state,
        n_jobs=settings.n_jobs, n_trees=min(64, 5 + round(n_obs**0.5 / 20.0)),
        n_iters=max(5, round(np.log2(n_obs))))


_UMAP_KERNELS = ("smooth_knn_dist", "compute_membership_strengths")


def _cache_umap_kernels() -> None:
    """Let numba keep UMAP's compiled connectivity kernels on disk (see module docstring)."""
    try:
        from umap import umap_
    except ImportError:  # scanpy without umap-learn cannot build these graphs anyway
        return
    for name in _UMAP_KERNELS:
        kernel = getattr(umap_, name, None)
        if kernel is None or getattr(kernel, "_cache", None) is None:
            continue
        if type(kernel._cache).__name__ == "NullCache":
            try:
                kernel.enable_caching()
            except Exception:  # noqa: BLE001 - no writable cache folder: compile as before
                pass


def neighbors(adata: AnnData, *, use_rep: str, n_neighbors: int, random_state: int = 0) -> None:
    """``sc.pp.neighbors(adata, use_rep=..., n_neighbors=..., random_state=...)`` in place.

    Examples
    --------
    >>> ad = AnnData(np.zeros((20, 1), np.float32))
    >>> ad.obsm["X_emb"] = np.random.default_rng(0).normal(size=(20, 4))
    >>> neighbors(ad, use_rep="X_emb", n_neighbors=5)
    >>> ad.obsp["connectivities"].shape
    (20, 20)
    """
    import scanpy as sc

    _cache_umap_kernels()
    transformer = None
    if adata.n_obs >= PYNNDESCENT_FROM:
        transformer = _matrix_output_transformer(adata.n_obs, n_neighbors, random_state)
    sc.pp.neighbors(adata, use_rep=use_rep, n_neighbors=n_neighbors, random_state=random_state,
                    transformer=transformer)
