"""The user-facing scDEAL model: fit on GDSC + a target AnnData, predict, save, load."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData

from .. import __version__
from .._io import jsonable, uns_safe
from .._system import usable_cores
from ..data.gdsc import BulkData
from ..data.preprocess import prediction_config, preprocess_target
from ..errors import ScdealError
from ..nn import (
    DrugResponseNet,
    EnsembleNet,
    FeatureExtractor,
    ResponsePredictor,
)
from . import _fitting as fitting
from . import _persistence as persistence
from . import prepare as prep
from ._progress import _Progress
from ._training import subsample
from .config import ScDealConfig
from .metrics import label_metrics
from .predictions import prediction_columns
from .process_lock import PROCESS_LOCK
from .reliability import UNRELIABLE_ADVICE, reliability_diagnostics

log = logging.getLogger(__name__)

# Fraction of the model's target genes a dataset must have to be predicted by it.
MIN_GENE_FRACTION = 0.9
PREDICT_CHUNK = prep.BLOCK_ROWS
# Cells the label-free reliability diagnostics of a fit are computed on (a seeded sample
# beyond it).
RELIABILITY_MAX_CELLS = 20000
_CACHE_WORDS = {"hit": "read from the cache", "miss": "trained and cached",
                "off": "trained (cache off)", "unused": "not needed"}


class ScDEAL:
    """Single-cell drug response by deep transfer learning from bulk cell lines (scDEAL).

    The model has a bulk feature extractor M_b, a single-cell feature extractor M_s (AE, DAE
    or VAE), and a response predictor P shared by both domains. :meth:`fit` pre-trains M_b and
    M_s on reconstruction, trains P on GDSC labels of one drug, then runs the DaNN transfer
    (cross-entropy on bulk + MMD between bulk and cell embeddings). Target labels are never
    used in model selection, and in training only when the user gives the labels of a few
    cells (``fit(..., labelled=...)``).

    The pre-training depends on no drug: M_b learns from the expression of every GDSC line
    (never their responses) and M_s from the cells. Both, and the cells' clusters, are stored
    in the cache (:mod:`scdeal.model.cache`) and reused by later fits with the same data,
    configuration and seed, so a second drug on the same cells skips them.

    Parameters
    ----------
    config
        A :class:`ScDealConfig`, a dict of its fields, or a preset name (see
        :func:`scdeal.model.preset`). Keyword arguments override single fields.
    cache
        Where to keep the drug-independent pre-training: ``True`` (default) the scdeal cache
        (``SCDEAL_CACHE_DIR``), a folder, a :class:`~scdeal.model.cache.ModelCache` or
        :class:`~scdeal.model.cache.MemoryCache`, or ``False`` to train everything in every fit.

    Examples
    --------
    Cells simulated from 6 held-out GDSC lines, tiny settings (the defaults train longer):

    >>> import scdeal
    >>> from scdeal.data.simulate import demo_target
    >>> bulk = scdeal.data.load_gdsc()                                         # doctest: +GDSC_DATA
    >>> adata, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    >>> model = scdeal.ScDEAL(n_models=1, pretrain_epochs=3, predictor_epochs=3,
    ...                       transfer_epochs=3)
    >>> model.fit(adata, drug="Gefitinib", bulk=bulk.without_lines(held), gene_ids="symbol")
    ScDEAL(drug='Gefitinib', genes=2000, extractor='dae', gene_space='shared')
    >>> model.predict(adata, label_key="sensitive")
    >>> bool(adata.obs["sens_preds"].between(0, 1).all()), sorted(adata.uns["scdeal"]["metrics"])[:2]
    (True, ['ap', 'auroc'])
    >>> model.save("gefitinib_model").name
    'gefitinib_model'
    """

    KIND = "single"  # what a saved model's config.json says it is

    def __init__(self, config: ScDealConfig | dict | str | None = None, *,
                 cache: bool | str | Path = True, **overrides: Any):
        from .config import preset

        if not isinstance(cache, bool | str | Path) and not (
                hasattr(cache, "get") and hasattr(cache, "put")):
            raise ScdealError(f"cache must be True, False, a folder or a ModelCache, not {cache!r}")
        self.cache = cache

        if config is None:
            config = ScDealConfig()
        elif isinstance(config, str):
            config = preset(config)
        elif isinstance(config, dict):
            config = ScDealConfig.from_dict(config)
        self.config = config.replace(**overrides) if overrides else config
        self.is_fitted = False
        self.drug: str | None = None
        self.gene_ids = "auto"
        self.bulk_genes: list[str] = []
        self.target_genes: list[str] = []
        self.target_scaler: prep.Standardizer | None = None
        # The genes the fit's cells were normalised over (after its gene filter); cells to
        # predict are normalised over the same ones. None: no gene filter ran.
        self.normalization_genes: list[str] | None = None
        self.gene_selection: dict | None = None  # set by fit when max_genes drops genes
        self.training_sample: dict | None = None  # set by fit beyond max_training_cells
        self.members: list[fitting.Member] = []
        # Deployable networks (a DrugResponseNet, or an EnsembleNet of the members').
        self.bulk_net: DrugResponseNet | EnsembleNet | None = None
        self.target_net: DrugResponseNet | EnsembleNet | None = None
        self.pretransfer_net: DrugResponseNet | EnsembleNet | None = None
        self.training: dict[str, Any] = {}
        # With labelled cells: how the transfer and their classifier combine (labelled.py).
        self.labelled_stack = None
        # Label-free diagnostics of the fit (see scdeal.model.reliability); None when unknown.
        self.reliability: dict[str, Any] | None = None

    def __repr__(self) -> str:
        state = f"drug={self.drug!r}, genes={len(self.target_genes)}" if self.is_fitted else "not fitted"
        return f"ScDEAL({state}, extractor={self.config.extractor!r}, gene_space={self.config.gene_space!r})"

    # ---------------------------------------------------------------------------------------
    # fitting

    def _device(self) -> torch.device:
        if self.config.device == "cuda":
            if not torch.cuda.is_available():
                raise ScdealError("device 'cuda' was asked for but no CUDA GPU is available; "
                                  "use --device cpu")
            return torch.device("cuda")
        return torch.device("cpu")

    def fit(
        self, adata: AnnData | str | Path, drug: str, *, bulk: BulkData | None = None,
        gene_ids: str = "auto", progress: bool = False,
        labelled: str | pd.Series | None = None, label_map: dict | None = None,
    ) -> ScDEAL:
        """Train on GDSC cell lines for ``drug`` and transfer to the cells of ``adata``.

        Parameters
        ----------
        adata
            Target cells x genes: counts, normalised or scaled values (see
            :class:`scdeal.data.preprocess.PreprocessConfig`). Labels are not needed and, if
            present, are not read (unless ``labelled`` names them). Or the path of a file
            (any format :func:`scdeal.data.read_target` reads): an ``.h5ad`` whose matrix
            would take more than 5% of the machine's memory is then read a block of cells
            at a time, only the training sample (at most ``max_training_cells``) kept in
            memory, and one log line says so (predict such a file with
            :meth:`predict_file`).
        drug
            Drug name; GDSC spellings are matched loosely (``PLX4720`` -> ``PLX-4720``).
        bulk
            Bulk data (default: :func:`scdeal.data.load_gdsc`).
        gene_ids
            Identifier type of ``adata.var_names``: auto, symbol, entrez, ensembl, ...
        progress
            Show progress bars.
        labelled
            Cells whose response is known (e.g. untreated parental controls, a few confirmed
            resistant cells): the name of an obs column, or a Series indexed by obs names.
            Cells with a value are labelled, the others (NaN or empty) only predicted. Values
            map to 1 (sensitive) / 0 (resistant) as in
            :func:`scdeal.data.labels.binary_labels`, with ``label_map``. The transfer stays
            label-free (unless ``labelled_weight > 0``: then their cross-entropy joins its
            loss), and the prediction combines it with a logistic regression on the labelled
            cells alone (:mod:`scdeal.model.labelled`), the classifier counting more the more
            labels there are. ``training["labelled_cells"]`` records their counts (``n``,
            ``sensitive``, ``resistant``), the column (``key``), ``stack`` (the weight, the
            two sources' AUROC on the labelled cells, each scored without its own label),
            ``used_for`` (in words) and ``members_kept_transfer``. The pre-transfer predictions, and the
            reliability verdict (of the transfer), stay label-free. Refused, one line each: an
            unknown column, no labelled cell (an all-empty column), labels of one class only,
            labelled cells that preprocessing removed (QC ``min_genes`` etc.). ``None``
            (default): a fit exactly as without this argument, and
            ``training["labelled_cells"]`` is None. To score the fit, score other cells:
            :meth:`predict` with ``label_key`` scores every cell labelled there, these ones
            included (``scdeal run --labelled-key`` leaves them out).
        label_map
            Label value -> 1/0 for ``labelled`` (default: 0/1 or sensitive/resistant).
        """
        sample = None
        if isinstance(adata, str | os.PathLike):
            from ._streaming import read_training_cells

            if labelled is not None and not isinstance(labelled, str):
                raise ScdealError("fit on a file takes labelled= as the name of an obs column "
                                  "of that file, not a Series")
            adata, sample = read_training_cells(adata, self.config.max_training_cells,
                                                self.config.seed, labelled=labelled,
                                                label_map=label_map)
        with PROCESS_LOCK, _torch_threads(self.config.num_threads):
            self._fit(adata, drug, bulk=bulk, gene_ids=gene_ids, progress=progress,
                      labelled=labelled, label_map=label_map)
        if sample is not None:  # fit saw the sample only; it is a sample of the file
            self.training_sample = self.training["training_sample"] = sample
        return self

    def _fit(self, adata: AnnData, drug: str, *, bulk: BulkData | None, gene_ids: str,
             progress: bool, labelled: str | pd.Series | None = None,
             label_map: dict | None = None) -> ScDEAL:
        cfg = self.config
        device = self._device()
        timings: dict[str, float] = {}
        start = time.perf_counter()
        known_labels = None
        if labelled is not None:  # checked before anything is loaded or trained
            known_labels = prep.cell_labels(adata.obs, labelled, label_map)
            if not cfg.transfer:
                raise ScdealError("labelled cells train through the transfer step, which "
                                  "transfer=False skips; set transfer=True or drop the labels")
        if bulk is None:
            from ..data.gdsc import load_gdsc

            bulk = load_gdsc()
        self.drug = bulk.resolve_drug(drug)
        keep = None if known_labels is None else np.flatnonzero(known_labels.notna().to_numpy())
        bulk_expr, bulk_gene_summary, target, Xs = self._training_data(adata, bulk, gene_ids,
                                                                       keep=keep)
        known, labelled_summary = None, None
        if known_labels is not None:
            known = _known_positions(known_labels, target.obs_names)
            labelled_summary = {
                "n": len(known[0]), "sensitive": int(known[1].sum()),
                "resistant": int((known[1] == 0).sum()),
                "key": labelled if isinstance(labelled, str) else None,
                "used_in_model_selection": False}
            log.info("training with %d labelled cells (%d sensitive, %d resistant)",
                     labelled_summary["n"], labelled_summary["sensitive"],
                     labelled_summary["resistant"])
        timings["load_and_preprocess"] = time.perf_counter() - start

        # The drug's labelled lines, checked before any training.
        bulk_lines = prep.drug_labels(bulk, self.drug, cfg, bulk_expr)
        bar = _Progress(progress)
        # The labelled cells enter the transfer only with labelled_weight > 0; otherwise the
        # members are the label-free fit's and the labels choose how to combine it with a
        # classifier of the labelled cells (scdeal.model.labelled).
        in_transfer = known if cfg.labelled_weight > 0 else None
        shared = fitting.fit_shared(self, bulk_expr, Xs, device, bar, self._cache_store())
        predictors = [fitting.seeded_predictor(cfg, cfg.seed + index, device)
                      for index in range(cfg.n_models)]

        def member(index: int):
            return fitting.fit_member(self, bulk_lines, Xs, cfg.seed + index, shared, device,
                                      bar, predictors[index], known=in_transfer)

        threads = min(cfg.member_threads, cfg.n_models, usable_cores())
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            # The shared cells' stage is the pool's first task: it trains beside the first
            # members, which need it only at their transfer (the same numbers either way).
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scdeal") as pool:
                shared.start(pool)
                results = list(pool.map(member, range(cfg.n_models)))
        else:
            shared.start()
            results = [member(index) for index in range(cfg.n_models)]
        shared.cells()  # waits for the shared stage, and raises its errors
        timings.update(shared.timings)
        log.info("pre-trained extractors (drug-independent): bulk %s, cells %s",
                 *(_CACHE_WORDS[shared.cache[s]] for s in ("bulk_extractor", "target_extractor")))
        members = [m for m, _ in results]
        reports = [r for _, r in results]
        for report in reports:  # seconds summed over members (they may overlap in time)
            for stage, seconds in report["timings_s"].items():
                timings[stage] = timings.get(stage, 0.0) + seconds
        bar.close()
        self.members = members
        self._assemble()

        self.labelled_stack = None
        if labelled_summary is not None:
            # The transfer keeps its best epoch by a label-free loss; a member that kept the
            # state before its first epoch learnt nothing from the labelled cells.
            kept = sum(h["best_epoch"] > 0 for r in reports for h in r["history"]
                       if h["stage"] == "transfer")
            labelled_summary["members_kept_transfer"] = int(kept)
            labelled_summary["in_transfer"] = cfg.labelled_weight > 0
            if kept == 0 and cfg.labelled_weight > 0:
                log.warning("scdeal: the transfer's early stopping (which does not use labels) "
                            "kept the state before the first transfer epoch in every member: "
                            "the labelled cells changed nothing; try more transfer_epochs or "
                            "patience, or a larger labelled_weight")
        first = reports[0]
        bulk_test = {key: float(np.mean([r["bulk_test_metrics"][key] for r in reports]))
                     for key in first["bulk_test_metrics"]}
        self.training = {
            "drug": self.drug,
            "release": first["release"],
            "bulk_source": bulk.source,
            "binarization": first["binarization"],
            "bulk_lines": first["bulk_lines"],
            "bulk_gene_mapping": bulk_gene_summary,
            "target_gene_mapping": target.uns.get("scdeal_gene_mapping", {}),
            "preprocess": target.uns.get("scdeal_preprocess", {}),
            "n_target_cells": int(len(Xs)),
            "training_sample": self.training_sample,
            "labelled_cells": labelled_summary,
            "n_bulk_genes": len(self.bulk_genes),
            "n_target_genes": len(self.target_genes),
            "gene_selection": self.gene_selection,
            "n_models": cfg.n_models,
            "bulk_test_metrics": bulk_test,
            "bulk_test_metrics_per_model": [r["bulk_test_metrics"] for r in reports],
            "history": [{**h, "model": "shared"} for h in shared.history]
            + [{**h, "model": i} for i, r in enumerate(reports) for h in r["history"]],
            "cache": shared.cache,
            "n_clusters": first["n_clusters"],
            "timings_s": timings,
        }
        self.is_fitted = True
        log.info("bulk test (%d lines, mean of %d models): AUROC %.3f, AP %.3f (prevalence %.3f)",
                 bulk_test["n_cells"], cfg.n_models, bulk_test["auroc"], bulk_test["ap"],
                 bulk_test["prevalence"])
        # The diagnostics compare members over cells: a seeded sample of a large target tells
        # the same as all of it, at a bounded cost.
        sample = Xs.subset(subsample(len(Xs), RELIABILITY_MAX_CELLS, cfg.seed))
        post, pre, _ = self._predict_members(sample, stacked=False)
        self.reliability = reliability_diagnostics(
            post, pre, [r["bulk_test_metrics"]["auroc"] for r in reports])
        if labelled_summary is not None:  # after the verdict: it sets the transfer's weight
            self._stack_labelled(Xs, known, labelled_summary)
        self.warn_if_unreliable()
        return self

    def _stack_labelled(self, Xs: prep.CellRows, known, summary: dict) -> None:
        """Choose how the transfer and a classifier of the labelled cells combine
        (:mod:`scdeal.model.labelled`); record it in ``summary['stack']``."""
        from .labelled import fit_stack, stack_line

        rows = Xs.subset(known[0])
        post, _, _ = self._predict_members(rows, pretransfer=False, stacked=False)
        sample = Xs.subset(subsample(len(Xs), RELIABILITY_MAX_CELLS, self.config.seed))
        ref, _, _ = self._predict_members(sample, pretransfer=False, stacked=False)
        self.labelled_stack, report = fit_stack(
            rows.dense(), known[1], post.mean(axis=0),
            reference=(sample.dense(), ref.mean(axis=0)), seed=self.config.seed,
            transfer_reliable=(self.reliability or {}).get("reliable"))
        if self.config.labelled_weight > 0:
            report["note"] = ("labelled_weight > 0: the transfer trained on these labels too, "
                              "so its score on them is optimistic")
        summary["stack"] = report
        summary["used_for"] = (f"log-odds: transfer weight {report['weight']:.2f}"
                               + (" (direction reversed)" if report["flipped"] else "")
                               + f", classifier of the labelled cells "
                               f"{1 - report['weight']:.2f}")
        log.info("labelled cells (%d): %s", report["n"], stack_line(report))

    def _training_data(self, adata: AnnData, bulk: BulkData, gene_ids: str,
                       keep: np.ndarray | None = None):
        """GDSC expression and the standardised cells on the model's gene spaces (sets
        ``gene_ids``, ``bulk_genes``, ``target_genes`` and ``target_scaler``). ``keep``:
        positions of cells that must be in the training sample (labelled cells)."""
        cfg = self.config
        self.gene_ids = gene_ids
        bulk_expr, bulk_gene_summary = prep.bulk_expression_on_symbols(bulk)
        rows = prep.training_rows(adata.n_obs, cfg.max_training_cells, cfg.seed, keep=keep)
        self.training_sample = None
        if rows is not None:
            log.info("training on a random %d of the %d cells (max_training_cells); every "
                     "cell is predicted", len(rows), adata.n_obs)
            self.training_sample = {"cells": len(rows), "of": int(adata.n_obs)}
            adata = adata[rows]
        target = self.prepare_target(adata)
        self.normalization_genes = target.uns["scdeal_preprocess"].pop("genes", None)

        # Gene spaces.
        self.gene_selection = None
        if cfg.gene_space == "shared":
            target_genes = set(target.var_names)
            shared = [g for g in bulk_expr.columns if g in target_genes]
            if len(shared) < cfg.min_shared_genes:
                raise ScdealError(
                    f"the target shares only {len(shared)} genes with GDSC (need "
                    f"{cfg.min_shared_genes}); check --gene-ids or use gene_space='separate'")
            if cfg.max_genes is not None and len(shared) > cfg.max_genes:
                shared, how = prep.most_variable_genes(target, shared, cfg.max_genes, bulk_expr)
                self.gene_selection = {"n_shared": len(set(target.var_names) &
                                                       set(bulk_expr.columns)),
                                       "kept": len(shared), "how": how}
                log.info("kept %d of the genes shared with GDSC (max_genes): %s",
                         len(shared), how)
            self.bulk_genes = self.target_genes = shared
        else:
            # Measured in benchmarks/README.md: nothing anchors the direction of the cell
            # embedding to the bulk one, and rankings came out inverted (PLX4720 AUROC 0.01).
            log.warning("gene_space='separate' (the paper's design): the cells' predictions may "
                        "come out inverted; check them against known sensitive cells, or use "
                        "the default gene_space='shared'")
            self.bulk_genes = list(bulk_expr.columns)
            self.target_genes = list(target.var_names)
        bulk_expr = bulk_expr[self.bulk_genes]

        # Target cells: standardised over all of them (no labels involved), block by block
        # when used (a sparse matrix stays sparse: atlas-sized targets fit in memory), or
        # once for the whole fit when that is small (CellRows.held_densely).
        X = target[:, self.target_genes].X
        X = sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X) else prep.dense_float32(X)
        prep.check_finite(X, "the target expression matrix")
        if X.shape[0] < 6:
            raise ScdealError(f"the target has {X.shape[0]} cells after preprocessing; at "
                              "least 6 are needed to train")
        self.target_scaler = prep.Standardizer.fit(X)
        return (bulk_expr, bulk_gene_summary, target,
                prep.CellRows(X, self.target_scaler).held_densely())

    def pretrain(self, adata: AnnData, *, bulk: BulkData | None = None, gene_ids: str = "auto",
                 progress: bool = False) -> dict[str, Any]:
        """Run only the drug-independent pre-training on these cells and store it in the cache.

        Later :meth:`fit` calls on the same cells, with the same configuration and cache, then
        skip it, whatever the drug (a drug screen does this once). The model stays unfitted.

        Returns
        -------
        dict
            ``cache`` (per stage: ``hit``, ``miss``, ``off`` or ``unused``), ``clusters`` (a
            ``pd.Series`` of the Leiden cluster of each cell that passed preprocessing (of
            the training sample, beyond ``max_training_cells``), as strings, indexed by obs
            name; ``None`` when the configuration has no cluster term)
            and ``timings_s``.
        """
        with PROCESS_LOCK, _torch_threads(self.config.num_threads):
            if bulk is None:
                from ..data.gdsc import load_gdsc

                bulk = load_gdsc()
            bulk_expr, _, target, Xs = self._training_data(adata, bulk, gene_ids)
            shared = fitting.fit_shared(self, bulk_expr, Xs, self._device(),
                                        _Progress(progress), self._cache_store())
            found = shared.cells()[1]
        clusters = None
        if found is not None:
            clusters = pd.Series(found.cpu().numpy().astype(str), index=target.obs_names,
                                 name="scdeal_cluster")
        return {"cache": shared.cache, "clusters": clusters, "timings_s": shared.timings}

    def _cache_store(self):
        """The :class:`~scdeal.model.cache.ModelCache` this model uses, or None."""
        from .cache import ModelCache

        if self.cache is False:
            return None
        if not isinstance(self.cache, bool | str | Path):  # a ModelCache or MemoryCache
            return self.cache
        return ModelCache(None if self.cache is True else self.cache)

    def warning_text(self) -> str | None:
        """The one-line warning of an unreliable fit (``None`` when there is nothing to say)."""
        rel = self.reliability or {}
        if rel.get("reliable") is not False:
            return None
        return (f"the {self.drug} predictions are NOT reliable ({rel['reason']}): "
                f"{UNRELIABLE_ADVICE}")

    def warn_if_unreliable(self) -> str | None:
        """Log (and return) :meth:`warning_text` when the fit's reliability check failed."""
        message = self.warning_text()
        if message is not None:
            log.warning("scdeal: WARNING: %s", message)
        return message

    def _assemble(self) -> None:
        """The deployable networks: one member as is, several averaged."""
        def combine(nets):
            return nets[0] if len(nets) == 1 else EnsembleNet(nets).eval()

        self.target_net = combine([m.target_net for m in self.members])
        self.pretransfer_net = combine([m.pretransfer_net for m in self.members])
        self.bulk_net = combine([m.bulk_net for m in self.members])

    def _predictor(self) -> ResponsePredictor:
        return fitting.build_predictor(self.config)

    def _network(self, extractor: FeatureExtractor, predictor) -> DrugResponseNet:
        return DrugResponseNet(extractor, predictor)

    def _extractor(self, n_genes: int) -> FeatureExtractor:
        return fitting.build_extractor(self.config, n_genes)

    def prepare_target(self, adata: AnnData, *, predicting: bool = False,
                       gene_ids: str | None = None) -> AnnData:
        """Gene ids -> HGNC symbols, then the preprocessing the configuration asks for.

        ``predicting=True`` (a fitted model): the preprocessing of cells to predict, every
        dataset-level choice fixed at fit time
        (:func:`scdeal.data.preprocess.prediction_config`), so that each cell is processed
        the same whatever other cells come with it. ``gene_ids``: the id type of
        ``adata.var_names`` when it differs from the fit's.
        """
        if adata.n_obs == 0 or adata.n_vars == 0:
            raise ScdealError(f"the target is empty ({adata.n_obs} cells x {adata.n_vars} genes)")
        config = self.config.preprocess
        if predicting:
            config = prediction_config(config, self.training.get("preprocess") or {})
        target = prep.target_on_symbols(adata, gene_ids or self.gene_ids, config.input_kind)
        return preprocess_target(target, config, copy=False,
                                 genes=self.normalization_genes if predicting else None)

    # ---------------------------------------------------------------------------------------
    # prediction

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ScdealError("the model is not trained: call fit() or ScDEAL.load(dir) first")

    def target_rows(self, adata: AnnData, *, gene_ids: str | None = None,
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
        target = self.prepare_target(adata, predicting=True, gene_ids=gene_ids)
        X = prep.align_genes(target, self.target_genes, min_fraction=MIN_GENE_FRACTION,
                             what="the target", keep_sparse=True)
        missing = prep.absent_genes(target, self.target_genes)
        if missing.any():
            log.warning("%d of the model's %d genes are absent from the target; they are set "
                        "to the training mean", int(missing.sum()), len(self.target_genes))
        if not sp.issparse(X):
            X[:, missing] = 0.0  # any finite value: the column is zeroed after scaling
        prep.check_finite(X, "the target expression matrix")
        return prep.CellRows(X, self.target_scaler, zero_columns=np.flatnonzero(missing)
                             if missing.any() else None), target.obs_names

    def target_matrix(self, adata: AnnData, **kwargs) -> tuple[np.ndarray, pd.Index]:
        """Standardised dense matrix on the model's genes and the obs names it covers
        (``kwargs``: as for :meth:`target_rows`)."""
        rows, names = self.target_rows(adata, **kwargs)
        return rows.dense(), names

    def _predict_members(
        self, X: np.ndarray | prep.CellRows, *, pretransfer: bool = True,
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
        device = next(self.members[0].target_net.parameters()).device
        with torch.no_grad():
            for block in blocks:
                x = torch.as_tensor(block, device=device)
                post.append([])
                pre.append([])
                stack = self.labelled_stack if stacked else None
                for i, member in enumerate(self.members):
                    net = member.target_net.eval()
                    p = net.predict_proba(x).cpu().numpy()
                    post[-1].append(p if stack is None else stack.combine(p, block))
                    if pretransfer:
                        pre[-1].append(member.pretransfer_net.eval().predict_proba(x).cpu().numpy())
                    if embedding and i == 0:
                        embs.append(net.embed(x).cpu().numpy())
        n_members = len(self.members)

        def stack(parts):
            if not parts:
                return np.zeros((n_members, 0), dtype=np.float32)
            return np.concatenate([np.stack(p) for p in parts], axis=1)

        return (stack(post), stack(pre) if pretransfer else None,
                np.concatenate(embs) if embedding and embs else None)

    def check(self, adata: AnnData, *, gene_ids: str | None = None,
              layer: str | None = None) -> dict[str, Any]:
        """Can this model be trusted on these cells? The label-free diagnostics and verdict
        of :mod:`scdeal.model.reliability` computed on ``adata`` (a seeded sample of at most
        20,000 of its cells), as :meth:`fit` computes them on the training cells: the members'
        agreement and consensus on these cells, the per-cell spread (``mean_cell_sd``,
        ``fraction_uncertain``), with the fit's bulk test AUROC. A saved model applied to new
        data says with it whether the members still agree there.

        Examples
        --------
        >>> import scdeal
        >>> model = scdeal.ScDEAL.load("gefitinib_model")                     # doctest: +SKIP
        >>> model.check(new_cells)["reliable"]                               # doctest: +SKIP
        True
        """
        self._check_fitted()
        with PROCESS_LOCK:
            X, _ = self.target_rows(adata, gene_ids=gene_ids, layer=layer)
            sample = X.subset(subsample(len(X), RELIABILITY_MAX_CELLS, self.config.seed))
            post, pre, _ = self._predict_members(sample, stacked=False)
        aurocs = [m.get("auroc", np.nan) for m in
                  self.training.get("bulk_test_metrics_per_model", [])] or [np.nan]
        found = reliability_diagnostics(post, pre, aurocs)
        found["n_cells"] = int(post.shape[1])
        return found

    def predict_proba(self, adata: AnnData, *, gene_ids: str | None = None,
                      layer: str | None = None) -> pd.Series:
        """Probability that each cell is sensitive (NaN for cells removed by QC); ``gene_ids``
        and ``layer`` as for :meth:`predict`."""
        self._check_fitted()
        with PROCESS_LOCK:
            X, names = self.target_rows(adata, gene_ids=gene_ids, layer=layer)
            post, _, _ = self._predict_members(X, pretransfer=False)
        return pd.Series(post.mean(axis=0), index=names).reindex(adata.obs_names)

    def predict(
        self, adata: AnnData, *, label_key: str | None = None, label_map: dict | None = None,
        key_prefix: str = "", copy: bool = False, gene_ids: str | None = None,
        layer: str | None = None,
    ) -> AnnData | None:
        """Predict every cell and write the results into ``adata`` (scanpy style).

        Each cell is predicted on its own: it gets the same probability whether it comes alone,
        in a batch, or with every cell (the preprocessing's dataset-level choices are fixed at
        fit time: :func:`scdeal.data.preprocess.prediction_config`). ``gene_ids``: the id type
        of ``adata.var_names`` when it differs from the fit's; ``layer``: predict from
        ``adata.layers[layer]`` instead of ``X``.

        Writes ``obs[prefix+'sens_preds']`` (probability of sensitive, the members' mean),
        ``'rest_preds'`` (1 - sens_preds), ``'sens_label'`` (categorical, 0 = resistant,
        1 = sensitive; ``sens_preds >= 0.5``), ``'sens_preds_sd'`` (standard deviation of the
        members' probabilities; NaN with one member), ``'sens_uncertain'`` (True where the
        members' spread reaches across 0.5: ``|sens_preds - 0.5| < sens_preds_sd``),
        ``'sens_preds_pret'`` / ``'sens_label_pret'`` (the same before transfer),
        ``obsm[prefix+'X_scdeal']`` (the transferred embedding) and ``uns[prefix+'scdeal']``
        (configuration, genes, versions, seed, training summary, ``reliability`` (the fit's
        label-free diagnostics, see :mod:`scdeal.model.reliability`), and ``metrics`` when
        ``label_key`` names a label column). Cells removed by quality control get NaN. Nothing
        else in ``adata`` is changed.

        Returns the annotated copy when ``copy=True``, else ``None``.
        """
        self._check_fitted()
        with PROCESS_LOCK:
            X, names = self.target_rows(adata, gene_ids=gene_ids, layer=layer)
            post, pre, emb = self._predict_members(X, embedding=True)
        out = adata.copy() if copy else adata
        pos = out.obs_names.get_indexer(names)

        def full(values: np.ndarray) -> np.ndarray:
            arr = np.full((out.n_obs, *values.shape[1:]), np.nan, dtype=np.float32)
            arr[pos] = values
            return arr

        columns = prediction_columns(full(post.T).T, full(pre.T).T)
        for name, values in columns.items():
            out.obs[f"{key_prefix}{name}"] = values
        out.obsm[f"{key_prefix}X_scdeal"] = full(emb)
        p, p_pre = columns["sens_preds"], columns["sens_preds_pret"]
        info = self.summary()
        if label_key is not None:
            info.update(label_metrics(adata.obs, label_key, label_map, p, p_pre))
        uns = uns_safe(info)
        uns["summary_json"] = json.dumps(info)
        out.uns[f"{key_prefix}scdeal"] = uns
        return out if copy else None

    def predict_file(self, path: str | Path, *, chunk_size: int = 20000, embedding: bool = False,
                     pretransfer: bool = False, key_prefix: str = "",
                     gene_ids: str | None = None) -> AnnData:
        """Predict a ``.h5ad`` file too large for memory, reading ``chunk_size`` cells at a time.

        Returns an AnnData with the file's cells, no genes, and the prediction keys of
        :meth:`predict` (``obsm`` embedding only when ``embedding=True``, the pre-transfer
        columns only when ``pretransfer=True``). See :mod:`scdeal.model._streaming` for the
        two steps that differ from :meth:`predict`.
        """
        from ._streaming import predict_backed

        self._check_fitted()
        with PROCESS_LOCK:
            out = predict_backed(self, path, chunk_size=chunk_size, embedding=embedding,
                                 pretransfer=pretransfer, key_prefix=key_prefix,
                                 gene_ids=gene_ids)
        info = self.summary()
        uns = uns_safe(info)
        uns["summary_json"] = json.dumps(info)
        out.uns[f"{key_prefix}scdeal"] = uns
        return out

    def summary(self) -> dict[str, Any]:
        """Configuration, genes, versions and training summary (JSON-serialisable)."""
        from importlib.metadata import version

        return jsonable({
            "drug": self.drug,
            "config": self.config.to_dict(),
            "seed": self.config.seed,
            "gene_ids": self.gene_ids,
            "genes": list(self.target_genes),
            "versions": {"scdeal": __version__, "torch": str(torch.__version__),
                         "anndata": version("anndata"), "scanpy": version("scanpy")},
            "training": self.training,
            "reliability": self.reliability if self.reliability is not None else {
                "reliable": None,
                "reason": "not computed: the model was saved by a scdeal version without "
                          "reliability diagnostics; refit to get them"},
        })

    # ---------------------------------------------------------------------------------------
    # persistence

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model to a folder: ``config.json``, ``model.safetensors`` (weights),
        ``genes.json``, ``scalers.npz``, ``training.json`` and ``reliability.json``. Written
        atomically."""
        self._check_fitted()
        return persistence.save_model(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> ScDEAL:
        """Load a model written by :meth:`save` (weights via safetensors; no pickle)."""
        model = persistence.load_model(cls, path, device=device)
        model.warn_if_unreliable()
        return model


def _known_positions(labels: pd.Series, names: pd.Index) -> tuple[np.ndarray, np.ndarray]:
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


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run a block with ``n`` torch CPU threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
