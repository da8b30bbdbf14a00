"""A stand-in for a fitted model, so the examples (and fast tests) of the tools that need
one run in a second, without GDSC data or training.

It has exactly what :func:`scdeal.tl.integrated_gradients` reads from a fitted
:class:`scdeal.model.ScDEAL`: the genes, a standardiser, the prepared input and an untrained
network of the same kind. Its predictions mean nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from anndata import AnnData


class _Standardiser:
    def __init__(self, X: np.ndarray) -> None:
        self.mean = X.mean(axis=0)
        self.scale = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X) - self.mean) / self.scale).astype(np.float32)


class TinyModel:
    """Untrained network on ``adata``'s genes, shaped like a fitted model's ``target_net``."""

    is_fitted = True
    drug = "example"

    def __init__(self, adata: AnnData, seed: int = 0) -> None:
        from ..nn import DrugResponseNet, FeatureExtractor, ResponsePredictor

        torch.manual_seed(seed)
        self.target_genes = list(map(str, adata.var_names))
        self.target_scaler = _Standardiser(self._dense(adata))
        self.target_net = DrugResponseNet(FeatureExtractor(adata.n_vars, [16], 8),
                                          ResponsePredictor(8, [4])).eval()

    @staticmethod
    def _dense(adata: AnnData) -> np.ndarray:
        X = adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X
        return np.log1p(np.asarray(X, dtype=np.float64))

    def prepare_target(self, adata: AnnData) -> AnnData:
        return AnnData(self._dense(adata[:, self.target_genes]).astype(np.float32),
                       obs=pd.DataFrame(index=adata.obs_names),
                       var=pd.DataFrame(index=self.target_genes))

    def target_matrix(self, adata: AnnData) -> tuple[np.ndarray, pd.Index]:
        prepared = self.prepare_target(adata)
        return self.target_scaler.transform(prepared.X), prepared.obs_names


def tiny_model(adata: AnnData, seed: int = 0) -> TinyModel:
    """A :class:`TinyModel` for ``adata`` (see the module docstring)."""
    return TinyModel(adata, seed)
