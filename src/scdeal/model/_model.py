"""The user-facing scDEAL model: fit on GDSC + a target AnnData, predict, save, load."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from .._io import summary_uns
from ..data.gdsc import BulkData
from ..errors import ScdealError
from ..nn import (
    DrugResponseNet,
    EnsembleNet,
    FeatureExtractor,
    ResponsePredictor,
)
from . import _fitting as fitting
from . import _gene_policy as policy
from . import _persistence as persistence
from . import prepare as prep
from ._ensemble import (
    RELIABILITY_MAX_CELLS,
    cache_store,
    labelled_record,
    note_kept_transfer,
    stack_labelled,
    torch_threads,
    train_members,
    training_record,
)
from ._inference import annotate, predict_members
from ._progress import _Progress
from ._training import subsample
from .config import ScDealConfig
from .metrics import label_metrics
from .process_lock import PROCESS_LOCK
from .reliability import UNRELIABLE_ADVICE, reliability_diagnostics

log = logging.getLogger(__name__)



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

    def member_config(self, seed: int) -> ScDealConfig:
        """The configuration the ensemble member of ``seed`` trains with."""
        return self.config.replace(seed=seed)

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
        with PROCESS_LOCK, torch_threads(self.config.num_threads):
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
            known = policy.known_positions(known_labels, target.obs_names)
            labelled_summary = labelled_record(known, labelled)
        timings["load_and_preprocess"] = time.perf_counter() - start

        # The drug's labelled lines, checked before any training.
        bulk_lines = prep.drug_labels(bulk, self.drug, cfg, bulk_expr)
        bar = _Progress(progress)
        # The labelled cells enter the transfer only with labelled_weight > 0; otherwise the
        # members are the label-free fit's and the labels choose how to combine it with a
        # classifier of the labelled cells (scdeal.model.labelled).
        in_transfer = known if cfg.labelled_weight > 0 else None
        shared, members, reports = train_members(self, bulk_expr, bulk_lines, Xs, device, bar,
                                                 known=in_transfer)
        timings.update(shared.timings)
        for report in reports:  # seconds summed over members (they may overlap in time)
            for stage, seconds in report["timings_s"].items():
                timings[stage] = timings.get(stage, 0.0) + seconds
        bar.close()
        self.members = members
        self._assemble()

        self.labelled_stack = None
        if labelled_summary is not None:
            note_kept_transfer(labelled_summary, reports, cfg.labelled_weight)
        self.training = training_record(self, bulk, target, len(Xs), shared, reports,
                                        labelled_summary, bulk_gene_summary, timings)
        bulk_test = self.training["bulk_test_metrics"]
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
            stack_labelled(self, Xs, known, labelled_summary)
        self.warn_if_unreliable()
        return self

    def _training_data(self, adata: AnnData, bulk: BulkData, gene_ids: str,
                       keep: np.ndarray | None = None):
        """The data policy of a fit (:func:`scdeal.model._gene_policy.training_data`)."""
        return policy.training_data(self, adata, bulk, gene_ids, keep=keep)

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
        with PROCESS_LOCK, torch_threads(self.config.num_threads):
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
        return cache_store(self.cache)

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
        return policy.prepare_target(self, adata, predicting=predicting, gene_ids=gene_ids)

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
        return policy.target_rows(self, adata, gene_ids=gene_ids, layer=layer)

    def _predict_members(self, X, **kwargs):
        """Each member's probabilities (:func:`scdeal.model._inference.predict_members`)."""
        return predict_members(self, X, **kwargs)

    def target_matrix(self, adata: AnnData, **kwargs) -> tuple[np.ndarray, pd.Index]:
        """Standardised dense matrix on the model's genes and the obs names it covers
        (``kwargs``: as for :meth:`target_rows`)."""
        rows, names = self.target_rows(adata, **kwargs)
        return rows.dense(), names

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
        A model fitted on some simulated cells, checked on cells of other lines:

        >>> import scdeal
        >>> from scdeal.data.simulate import demo_target
        >>> bulk = scdeal.data.load_gdsc()                                     # doctest: +GDSC_DATA
        >>> cells, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
        >>> new_cells, _ = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=5,
        ...                            seed=1)
        >>> model = scdeal.ScDEAL(n_models=2, pretrain_epochs=2, predictor_epochs=2,
        ...                       transfer_epochs=2, cache=False)
        >>> _ = model.fit(cells, "Gefitinib", bulk=bulk.without_lines(held), gene_ids="symbol")
        >>> found = model.check(new_cells)
        >>> found["n_cells"], found["reliable"] in (True, False)
        (30, True)
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
        columns = annotate(out, names, post, pre, emb, key_prefix)
        info = self.summary()
        if label_key is not None:
            info.update(label_metrics(adata.obs, label_key, label_map, columns["sens_preds"],
                                      columns["sens_preds_pret"]))
        out.uns[f"{key_prefix}scdeal"] = summary_uns(info)
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
        uns = summary_uns(info)
        out.uns[f"{key_prefix}scdeal"] = uns
        return out

    def summary(self) -> dict[str, Any]:
        """Configuration, genes, versions and training summary (JSON-serialisable)."""
        return persistence.model_summary(self)

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
