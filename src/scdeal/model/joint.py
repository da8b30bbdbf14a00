"""The joint multi-drug model: every drug of a screen in one fit.

A per-drug screen trains, for every drug, its own predictor, cell extractor and transfer,
although the bulk lines, the cells and the alignment between them are the same for every drug.
:class:`JointScDEAL` trains them once: per ensemble member, the bulk extractor M_b (from the
shared label-free pre-training) is fine-tuned with a head that has one output per drug
(:class:`~scdeal.nn.MultiDrugPredictor`), each drug's loss masked to the lines labelled for it
by its own waterfall and class-balanced within the drug; one cell extractor M_s per member
(pre-trained on the cells from that M_b, as in a single-drug fit); one DaNN transfer that
updates the shared parts and every output: the drugs' cross-entropy and cluster terms averaged
and the MMD weighted ``mmd_weight / D`` (``joint_transfer="summed"``: the MMD counted once
beside the D drugs' terms, so with one drug it has the per-drug loss weights; ``"shared"`` keeps
``mmd_weight``, ``"cells"`` moves the cell extractor alone by MMD alone, ``"clusters"`` drops
the MMD, ``"none"`` skips the transfer; benchmarks/README.md, sections 11, 14 and 15). The
ensemble, the label-free early stopping and the reliability rule are those of
:class:`~scdeal.model.ScDEAL`, per drug. Target labels enter nowhere.

Each member splits the labelled lines by line (:mod:`scdeal.model.joint_labels`): a drug's
``bulk_test_auroc`` is measured on lines none of whose labels, for any drug, were trained on.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from .._io import jsonable
from .._system import usable_cores
from ..data.gdsc import BulkData
from ..errors import ScdealError
from ..nn import FeatureExtractor, JointDrugNet, MultiDrugPredictor
from . import _fitting as fitting
from . import prepare as prep
from ._ensemble import torch_threads
from ._model import ScDEAL
from ._multidrug import MultiDrugPredictions
from ._progress import _Progress
from ._training import subsample
from .config import ScDealConfig
from .joint_labels import JointLabels, joint_labels
from .process_lock import PROCESS_LOCK
from .reliability import reliability_diagnostics

log = logging.getLogger(__name__)

RELIABILITY_MAX_CELLS = 20000


@dataclass
class JointSetup:
    """What every member of a joint fit trains from (built once per process)."""

    labels: JointLabels
    Xs: prep.CellRows
    shared: fitting.SharedStages
    device: torch.device
    bar: _Progress
    bulk_source: str
    target: AnnData
    seconds: float


class JointScDEAL(MultiDrugPredictions, ScDEAL):
    """One scDEAL model for many drugs at once (a shared trunk, one output per drug).

    Same configuration, cache and ensemble as :class:`~scdeal.model.ScDEAL`; :meth:`fit`
    takes a list of drugs, :meth:`predict` writes cells x drugs P(sensitive) into ``obsm``.
    ``reliability`` holds, per drug, the label-free diagnostics and verdict of
    :mod:`scdeal.model.reliability` (the members' consensus on that drug's output, and its
    held-out bulk AUROC). ``scdeal screen --strategy joint`` fits one per block of drugs
    that respond alike (:class:`~scdeal.model.ScreenModel`).

    Examples
    --------
    >>> import scdeal
    >>> from scdeal.data.simulate import demo_target
    >>> from scdeal.model import JointScDEAL
    >>> bulk = scdeal.data.load_gdsc()                                         # doctest: +GDSC_DATA
    >>> adata, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    >>> model = JointScDEAL(n_models=2, pretrain_epochs=2, predictor_epochs=2,
    ...                     transfer_epochs=2, cache=False)
    >>> model.fit(adata, ["Gefitinib", "Erlotinib"], bulk=bulk.without_lines(held),
    ...           gene_ids="symbol")
    JointScDEAL(drugs=2, genes=2000, extractor='dae', gene_space='shared')
    >>> model.predict(adata)
    >>> adata.obsm["scdeal_screen"].columns.tolist(), adata.obsm["scdeal_screen"].shape
    (['Gefitinib', 'Erlotinib'], (60, 2))
    """

    KIND = "joint"

    def __init__(self, config=None, *, cache=True, **overrides: Any):
        super().__init__(config, cache=cache, **overrides)
        self.drugs: list[str] = []

    def __repr__(self) -> str:
        state = (f"drugs={len(self.drugs)}, genes={len(self.target_genes)}" if self.is_fitted
                 else "not fitted")
        return (f"JointScDEAL({state}, extractor={self.config.extractor!r}, "
                f"gene_space={self.config.gene_space!r})")

    # ---------------------------------------------------------------------------------------
    # fitting

    def fit(self, adata: AnnData, drugs: list[str], *, bulk: BulkData | None = None,
            gene_ids: str = "auto", progress: bool = False,
            trained: list | None = None) -> JointScDEAL:
        """Train one model for every drug of ``drugs`` on GDSC and the cells of ``adata``.

        Parameters
        ----------
        adata
            Target cells x genes (as for :meth:`ScDEAL.fit`; labels are not read).
        drugs
            Drug names; each needs ``min_per_class`` labelled lines of each class (else
            :class:`~scdeal.errors.DrugError` names the ones that do not).
        bulk, gene_ids, progress
            As for :meth:`ScDEAL.fit`.
        trained
            The members' results, ``(Member, report)`` per member in order, when they were
            trained elsewhere (:meth:`train_member`, e.g. as Dask tasks); default: trained here,
            ``member_threads`` at a time.
        """
        with PROCESS_LOCK, torch_threads(self.config.num_threads):
            started = time.perf_counter()
            setup = self.setup(adata, drugs, bulk=bulk, gene_ids=gene_ids, progress=progress)
            if trained is None:
                trained = self._train_members(setup)
            if len(trained) != self.config.n_models:
                raise ScdealError(f"{len(trained)} trained members given; the configuration "
                                  f"has n_models={self.config.n_models}")
            self._finish(setup, trained, time.perf_counter() - started)
        return self

    def setup(self, adata: AnnData, drugs: list[str], *, bulk: BulkData | None = None,
              gene_ids: str = "auto", progress: bool = False) -> JointSetup:
        """Load and preprocess, build the label matrix, and get the drug-independent stages
        (from the cache when it holds them): what :meth:`train_member` needs."""
        started = time.perf_counter()
        if bulk is None:
            from ..data.gdsc import load_gdsc

            bulk = load_gdsc()
        if isinstance(drugs, str) or not len(drugs):
            raise ScdealError("give the joint model a list of drug names (at least one)")
        if self.config.joint_transfer == "cells":
            # The transfer moves the cell extractor alone, by MMD alone; recorded in the
            # configuration the model is saved with.
            self.config = self.config.replace(transfer_update="target_only", cluster_weight=0.0)
        bulk_expr, _, target, Xs = self._training_data(adata, bulk, gene_ids)
        labels = joint_labels(bulk, list(drugs), self.config, bulk_expr)
        self.drugs = labels.drugs
        self.drug = None
        device = self._device()
        bar = _Progress(progress)
        shared = fitting.fit_shared(self, bulk_expr, Xs, device, bar, self._cache_store())
        return JointSetup(labels, Xs, shared, device, bar, bulk.source, target,
                          time.perf_counter() - started)

    def member_config(self, seed: int) -> ScDealConfig:
        """The configuration member ``seed`` trains with: ``joint_transfer="summed"`` counts
        the MMD once beside the D drugs' terms (``mmd_weight / D`` with the drugs' terms
        averaged), ``"clusters"`` drops the MMD (the cluster term alone moves the cells),
        ``"none"`` skips the transfer."""
        cfg = super().member_config(seed)
        if cfg.joint_transfer == "summed":
            return cfg.replace(mmd_weight=cfg.mmd_weight / len(self.drugs))
        if cfg.joint_transfer == "clusters":
            return cfg.replace(mmd_weight=0.0)
        if cfg.joint_transfer == "none":
            return cfg.replace(transfer=False)
        return cfg

    def _head(self, seed: int) -> MultiDrugPredictor:
        torch.manual_seed(seed)  # as fitting.seeded_predictor: the member's own init
        return self._predictor().to(self._device())

    def _predictor(self) -> MultiDrugPredictor:
        cfg = self.config
        dims = cfg.predictor_dims if cfg.joint_head_dims is None else cfg.joint_head_dims
        return MultiDrugPredictor(cfg.latent_dim, dims, len(self.drugs),
                                  dropout=cfg.dropout, batch_norm=cfg.batch_norm,
                                  activation=cfg.activation)

    def train_member(self, setup: JointSetup, index: int, head: MultiDrugPredictor | None = None):
        """Train member ``index`` (seed ``seed + index``): ``(Member, report)``."""
        seed = self.config.seed + index
        return fitting.fit_member(self, setup.labels, setup.Xs, seed, setup.shared,
                                  setup.device, setup.bar,
                                  head if head is not None else self._head(seed))

    def _train_members(self, setup: JointSetup) -> list:
        cfg = self.config
        # Every head is initialised from the global generator before any thread starts (the
        # shared cells' stage draws from it): the same numbers in threads or one by one.
        heads = [self._head(cfg.seed + i) for i in range(cfg.n_models)]
        threads = min(cfg.member_threads, cfg.n_models, usable_cores())
        if threads > 1:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scdeal") as pool:
                setup.shared.start(pool)
                results = list(pool.map(lambda i: self.train_member(setup, i, heads[i]),
                                        range(cfg.n_models)))
        else:
            setup.shared.start()
            results = [self.train_member(setup, i, heads[i]) for i in range(cfg.n_models)]
        setup.shared.cells()  # raises the shared stage's errors
        return results

    def _finish(self, setup: JointSetup, trained: list, seconds: float) -> None:
        cfg = self.config
        setup.bar.close()
        self.members = [member for member, _ in trained]
        reports = [report for _, report in trained]
        self._assemble()
        per_member = np.array([r["bulk_test_metrics"]["auroc"] for r in reports],
                              dtype=np.float64)  # members x drugs
        with np.errstate(all="ignore"):
            bulk_auroc = np.nanmean(np.where(np.isnan(per_member), np.nan, per_member), axis=0)
        labels = setup.labels.y
        self.training = {
            "strategy": "joint",
            "drugs": self.drugs,
            "releases": setup.labels.releases,
            "bulk_source": setup.bulk_source,
            "bulk_lines": {"labelled": len(labels),
                           "per_drug": {d: {"sensitive": int((labels[d] == 1).sum()),
                                            "resistant": int((labels[d] == 0).sum())}
                                        for d in self.drugs},
                           "split": reports[0]["bulk_lines"]},
            "target_gene_mapping": setup.target.uns.get("scdeal_gene_mapping", {}),
            "preprocess": setup.target.uns.get("scdeal_preprocess", {}),
            "n_target_cells": len(setup.Xs),
            "training_sample": self.training_sample,
            "n_target_genes": len(self.target_genes),
            "gene_selection": self.gene_selection,
            "n_models": cfg.n_models,
            "bulk_test_auroc": dict(zip(self.drugs, bulk_auroc.tolist(), strict=True)),
            "bulk_test_auroc_per_model": per_member.tolist(),  # members x drugs
            "history": [{**h, "model": "shared"} for h in setup.shared.history]
            + [{**h, "model": i} for i, r in enumerate(reports) for h in r["history"]],
            "cache": setup.shared.cache,
            "n_clusters": reports[0]["n_clusters"],
            "timings_s": {"fit": seconds, "setup": setup.seconds},
        }
        self.is_fitted = True
        sample = setup.Xs.subset(subsample(len(setup.Xs), RELIABILITY_MAX_CELLS, cfg.seed))
        post, pre, _ = self._predict_members(sample)  # members x cells x drugs
        self.reliability = {
            drug: reliability_diagnostics(post[:, :, d], pre[:, :, d], per_member[:, d])
            for d, drug in enumerate(self.drugs)}
        n_reliable = sum(bool(r["reliable"]) for r in self.reliability.values())
        log.info("joint model: %d drugs, %d flagged reliable, %.1f s", len(self.drugs),
                 n_reliable, seconds)

    def _assemble(self) -> None:
        # The single-drug ensemble networks (EnsembleNet) read two-class logits; the joint
        # model predicts through its members (predict, predict_proba).
        self.target_net = self.pretransfer_net = self.bulk_net = None

    def _network(self, extractor: FeatureExtractor, predictor) -> JointDrugNet:
        return JointDrugNet(extractor, predictor)

    # ---------------------------------------------------------------------------------------
    # prediction

    def warning_text(self) -> str | None:
        return None  # the verdict is per drug: reliability_table()

    def reliability_table(self) -> pd.DataFrame:
        """Per drug: ``reliable``, ``reason``, ``member_agreement``, ``member_consensus``,
        ``bulk_test_auroc`` (from the fit; see :mod:`scdeal.model.reliability`)."""
        self._check_fitted()
        rows = [{"drug": drug, **{k: (self.reliability or {}).get(drug, {}).get(k) for k in (
            "reliable", "reason", "member_agreement", "member_consensus", "bulk_test_auroc")}}
            for drug in self.drugs]
        return pd.DataFrame(rows)

    def predict_members(self, adata: AnnData, *, gene_ids: str | None = None,
                        layer: str | None = None) -> tuple[np.ndarray, pd.Index]:
        """Each member's P(sensitive) of every drug, members x cells x drugs, for the cells
        that pass preprocessing (their obs names); ``gene_ids``, ``layer`` as for
        :meth:`ScDEAL.predict`."""
        self._check_fitted()
        with PROCESS_LOCK:
            X, names = self.target_rows(adata, gene_ids=gene_ids, layer=layer)
            post, _, _ = self._predict_members(X, pretransfer=False)
        return post, names

    def predict_file(self, path: str | Path, **kwargs):
        raise ScdealError("a joint model predicts from memory: read the file "
                          "(scdeal.data.read_target) and call predict(); for files larger "
                          "than memory, predict it in parts")

    def summary(self) -> dict[str, Any]:
        info = super().summary()
        info.update({"drug": None, "drugs": list(self.drugs), "strategy": "joint"})
        return jsonable(info)
