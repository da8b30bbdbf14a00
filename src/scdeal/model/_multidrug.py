"""What the models of many drugs (:class:`~scdeal.model.JointScDEAL`,
:class:`~scdeal.model.ScreenModel`) share: cells x drugs predictions written into AnnData."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from .._io import summary_uns

SCREEN_KEY = "scdeal_screen"


class MultiDrugPredictions:
    """:meth:`predict_proba` and :meth:`predict` from the class's ``predict_members``
    (members x cells x drugs, and the cells' names), ``drugs``, ``summary()`` and
    ``reliability_table()``."""

    drugs: list[str]
    UNS_LEAVE_OUT: tuple[str, ...] = ("reliability",)  # summary keys kept only as JSON

    def predict_proba(self, adata: AnnData, *, gene_ids: str | None = None,
                      layer: str | None = None) -> pd.DataFrame:
        """P(sensitive), cells x drugs, the members' mean (NaN for cells removed by QC)."""
        post, names = self.predict_members(adata, gene_ids=gene_ids, layer=layer)
        return pd.DataFrame(post.mean(axis=0), index=names,
                            columns=self.drugs).reindex(adata.obs_names)

    def predict(self, adata: AnnData, *, key_added: str = SCREEN_KEY, copy: bool = False,
                gene_ids: str | None = None, layer: str | None = None) -> AnnData | None:
        """Predict every drug for every cell and write the results into ``adata``.

        Writes ``obsm[key_added]`` (DataFrame, cells x drugs, P(sensitive), the members'
        mean; NaN for cells removed by quality control), ``obsm[key_added + '_sd']`` (the
        members' standard deviation) and ``uns[key_added + '_model']`` (configuration,
        versions and the per-drug reliability of the fit, ``reliability_json``: the
        ``reliability_table()``). ``gene_ids``, ``layer``: as for :meth:`ScDEAL.predict`.
        Returns the annotated copy when ``copy=True``, else ``None``.
        """
        post, names = self.predict_members(adata, gene_ids=gene_ids, layer=layer)
        out = adata.copy() if copy else adata
        for key, values in ((key_added, post.mean(axis=0)),
                            (f"{key_added}_sd", post.std(axis=0))):
            out.obsm[key] = pd.DataFrame(values, index=names, columns=self.drugs).reindex(
                out.obs_names).astype(np.float32)
        uns = summary_uns(self.summary(), leave_out=self.UNS_LEAVE_OUT)
        uns["reliability_json"] = self.reliability_table().to_json(orient="records")
        out.uns[f"{key_added}_model"] = uns
        return out if copy else None
