"""The kNN graph helper: scanpy's graph, also on datasets large enough for pynndescent."""

from __future__ import annotations

import numpy as np
import pytest
from anndata import AnnData
from sklearn.neighbors import NearestNeighbors

from scdeal.data.neighbors import PYNNDESCENT_FROM, neighbors


def _cells(n, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(8, 6))
    x = centres[rng.integers(0, 8, n)] + rng.normal(size=(n, 6))
    ad = AnnData(np.zeros((n, 1), np.float32))
    ad.obsm["X_emb"] = x.astype(np.float32)
    return ad


def _recall(ad, k):
    """Share of each cell's true k-1 nearest neighbours present in the graph."""
    dist = ad.obsp["distances"].tocsr()
    exact = NearestNeighbors(n_neighbors=k).fit(ad.obsm["X_emb"])
    truth = exact.kneighbors(return_distance=False)[:, : k - 1]
    found = [set(dist[i].indices) for i in range(ad.n_obs)]
    return np.mean([len(found[i] & set(truth[i])) / (k - 1) for i in range(ad.n_obs)])


@pytest.mark.parametrize("n", [300, PYNNDESCENT_FROM + 200])
def test_graph_holds_the_nearest_neighbours(n):
    ad = _cells(n)
    neighbors(ad, use_rep="X_emb", n_neighbors=10, random_state=0)
    assert ad.obsp["connectivities"].shape == (n, n)
    assert ad.uns["neighbors"]["params"]["n_neighbors"] == 10
    # Each cell keeps (about) its 9 nearest other cells; approximate search above the cut.
    assert _recall(ad, 10) > (0.999 if n < PYNNDESCENT_FROM else 0.9)
