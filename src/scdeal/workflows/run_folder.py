"""``scdeal run`` as a function: train on GDSC and a target, predict every cell, write a run
folder (``predictions.h5ad``, ``model/``, ``run.json`` and, with labels, ``metrics.json``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .._io import atomic_dir, summary_uns
from ..errors import ScdealError

#: What ``metrics.json`` says was scored when some cells trained the model.
SCORED_UNLABELLED = "cells not in --labelled-key"


@dataclass
class RunResult:
    """What :func:`run` did.

    Attributes
    ----------
    model
        The fitted :class:`~scdeal.ScDEAL`.
    adata
        The target with the predictions (keys of :meth:`~scdeal.ScDEAL.predict`); ``None``
        when the file was read in blocks (``backed``): the predictions are then in ``obs``.
    obs
        The cells' ``obs`` with the prediction columns (also for a backed run).
    info
        The prediction summary (``adata.uns['scdeal']`` as a dict): configuration, versions,
        reliability, training and, with labels, ``metrics``.
    out
        The run folder written (``None`` when ``out`` was not given).
    backed
        Whether the target was read a block of cells at a time.
    backed_reason
        Why it was read so without being asked (one line), else ``None``.
    timings_s
        Seconds per step.

    Examples
    --------
    :func:`run` returns one; its fields:

    >>> import dataclasses
    >>> [f.name for f in dataclasses.fields(RunResult)][:4]
    ['model', 'adata', 'obs', 'info']
    """

    model: Any
    adata: AnnData | None
    obs: pd.DataFrame
    info: dict
    out: Path | None = None
    backed: bool = False
    backed_reason: str | None = None
    timings_s: dict = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        """Cells predicted."""
        return len(self.obs)


def run(target: str | Path | AnnData, drug: str, out: str | Path | None = None, *,
        label_key: str | None = None, label_map: dict | None = None,
        labelled_key: str | None = None, gene_ids: str = "auto", backed: bool | None = None,
        config=None, cache: bool | str | Path = True, progress: bool = True,
        sep: str | None = None, orientation: str = "cells_by_genes", bulk=None,
        command: str = "run", extra: dict | None = None) -> RunResult:
    """Train scDEAL for ``drug`` on GDSC and the ``target`` cells, predict every cell, and
    write the run folder ``out`` (what ``scdeal run`` does).

    Parameters
    ----------
    target
        An AnnData, or a file :func:`scdeal.data.read_target` reads (.h5ad, 10x, tables).
    drug
        Drug name (GDSC spelling or close to it).
    out
        Run folder, replaced atomically: ``predictions.h5ad``, ``model/``, ``run.json`` and,
        with ``label_key``, ``metrics.json``. ``None``: nothing is written.
    label_key
        ``obs`` column with true labels; used only to score the predictions.
    label_map
        How label values map to 1/0 (:func:`scdeal.data.parse_label_map`).
    labelled_key
        ``obs`` column with the known response of a few cells: they train the model
        (:meth:`scdeal.ScDEAL.fit`'s ``labelled``), and with ``label_key`` only the other
        cells are scored.
    gene_ids
        Identifier type of the target's genes (default: detect).
    backed
        Read an ``.h5ad`` a block of cells at a time, train on a sample of at most
        ``max_training_cells`` cells and predict every cell block by block. ``None``
        (default): when its matrix would take more than 5% of this machine's memory
        (:func:`scdeal.data.backed.reads_backed`).
    config
        A :class:`~scdeal.ScDealConfig`, dict of its fields or preset name.
    cache
        As :class:`~scdeal.ScDEAL`'s ``cache``.
    progress
        Log one line per finished training stage.
    sep, orientation
        How to read a text table (:func:`scdeal.data.read_target`).
    bulk
        GDSC data to train on (default: :func:`scdeal.data.load_gdsc`).
    command, extra
        Recorded in ``run.json``.

    Returns
    -------
    RunResult
        ``result.adata`` holds the keys :meth:`scdeal.ScDEAL.predict` writes
        (``obs['sens_preds']``, ``'sens_label'``, ``obsm['X_scdeal']``, ``uns['scdeal']``,
        ...).

    Examples
    --------
    Cells simulated from 6 held-out GDSC lines, tiny settings (the defaults train longer):

    >>> import scdeal
    >>> from scdeal.data.simulate import demo_target
    >>> bulk = scdeal.data.load_gdsc()                                         # doctest: +GDSC_DATA
    >>> adata, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    >>> tiny = dict(n_models=2, pretrain_epochs=2, predictor_epochs=2, transfer_epochs=2)
    >>> result = scdeal.workflows.run(adata, "Gefitinib", "runs/gefitinib", config=tiny,
    ...                               label_key="sensitive", gene_ids="symbol",
    ...                               bulk=bulk.without_lines(held), cache=False,
    ...                               progress=False)
    >>> sorted(p.name for p in result.out.iterdir())
    ['metrics.json', 'model', 'predictions.h5ad', 'run.json']
    >>> result.n_cells, 0 <= result.info["metrics"]["auroc"] <= 1
    (60, True)
    """
    from ..model import ScDEAL

    started = time.perf_counter()
    _check_label_columns(label_key, labelled_key)
    config = ScDEAL(config).config  # a config, dict of fields or preset name, validated
    reason = None
    if isinstance(target, AnnData):
        if backed:
            raise ScdealError("backed reads a file a block of cells at a time; give the path of "
                              "an .h5ad file, not an AnnData")
        backed = False
    elif backed is None:  # chosen by the file's size
        from ..data.backed import reads_backed

        reason = reads_backed(target)
        backed = reason is not None
    steps = _RunSteps(drug=drug, label_key=label_key, label_map=label_map,
                      labelled_key=labelled_key, gene_ids=gene_ids, config=config, cache=cache,
                      progress=progress, bulk=bulk)
    if backed:
        result = steps.backed(Path(target))
    else:
        if not isinstance(target, AnnData):
            from ..data.singlecell import read_target

            extra_columns = [labelled_key] if labelled_key and labelled_key != label_key else []
            t0 = time.perf_counter()
            target = read_target(target, sep=sep, label_key=label_key, obs_columns=extra_columns,
                                 orientation=orientation)
            steps.read_s = time.perf_counter() - t0
        result = steps.in_memory(target)
    result.backed_reason = reason
    if out is not None:
        result.out = Path(out)
        write_run(result.out, result.model, result.adata, read_s=steps.read_s,
                  predict_s=steps.predict_s, started=started, command=command,
                  info=result.info, write_predictions=steps.write_predictions,
                  extra={**(extra or {}), **({"backed": True} if backed else {})})
    return result


@dataclass
class _RunSteps:
    """The steps of :func:`run` on cells in memory or on a file read in blocks."""

    drug: str
    label_key: str | None
    label_map: dict | None
    labelled_key: str | None
    gene_ids: str
    config: Any
    cache: Any
    progress: bool
    bulk: Any
    read_s: float = 0.0
    predict_s: float = 0.0
    write_predictions: Any = None

    def _fit(self, cells: AnnData):
        from ..model import ScDEAL

        model = ScDEAL(self.config, cache=self.cache)
        return model.fit(cells, self.drug, bulk=self.bulk, gene_ids=self.gene_ids,
                         progress=self.progress, labelled=self.labelled_key,
                         label_map=self.label_map)

    def _known(self, obs: pd.DataFrame) -> pd.Series | None:
        if not self.labelled_key:
            return None
        from ..model.prepare import cell_labels

        known = cell_labels(obs, self.labelled_key, self.label_map)
        if self.label_key:
            check_scorable(obs, self.label_key, self.label_map, known)
        return known

    def in_memory(self, adata: AnnData) -> RunResult:
        if self.label_key and self.label_key in adata.obs:
            # Validate the labels before hours of training, not after.
            from ..data.labels import binary_labels

            binary_labels(adata.obs, self.label_key, self.label_map)
        known = self._known(adata.obs)
        model = self._fit(adata)
        t0 = time.perf_counter()
        model.predict(adata, label_key=None if known is not None else self.label_key,
                      label_map=self.label_map)
        info = json.loads(adata.uns["scdeal"]["summary_json"])
        if known is not None and self.label_key:
            info.update(unlabelled_metrics(adata.obs, self.label_key, self.label_map, known,
                                           adata.obs["sens_preds"].to_numpy("float32"),
                                           adata.obs["sens_preds_pret"].to_numpy("float32")))
            uns = summary_uns(info)
            adata.uns["scdeal"] = uns
        self.predict_s = time.perf_counter() - t0
        self.write_predictions = adata.write_h5ad
        return RunResult(model=model, adata=adata, obs=adata.obs, info=info)

    def backed(self, path: Path) -> RunResult:
        from ..data.backed import annotate_copy, file_obs, read_rows
        from ..model.metrics import label_metrics
        from ..model.prepare import training_rows

        t0 = time.perf_counter()
        obs = file_obs(path)
        n = len(obs)
        for key in (self.label_key, self.labelled_key):
            if key and key not in obs:
                raise ScdealError(f"{path} has no obs column {key!r}; its "
                                  f"columns: {', '.join(map(str, obs.columns)) or 'none'}")
        known = self._known(obs)
        keep = None if known is None else np.flatnonzero(known.notna().to_numpy())
        # The labelled cells are always in the training sample (as in ScDEAL.fit).
        rows = training_rows(n, self.config.max_training_cells, self.config.seed, keep=keep)
        sample = read_rows(path, rows)
        if self.label_key:
            from ..data.labels import binary_labels

            binary_labels(sample.obs, self.label_key, self.label_map)
        self.read_s = time.perf_counter() - t0
        model = self._fit(sample)
        if rows is not None:  # fit saw the sample only; it is a sample of the file
            model.training["training_sample"] = {"cells": len(rows), "of": n}
        del sample
        t0 = time.perf_counter()
        predicted = model.predict_file(path, embedding=True, pretransfer=True)
        for column in predicted.obs.columns:
            obs[column] = predicted.obs[column].to_numpy()
        info = model.summary()
        if self.label_key:
            p, p_pre = (obs[c].to_numpy("float32") for c in ("sens_preds", "sens_preds_pret"))
            if known is not None:
                info.update(unlabelled_metrics(obs, self.label_key, self.label_map, known, p,
                                               p_pre))
            else:
                info.update(label_metrics(obs, self.label_key, self.label_map, p, p_pre))
        uns = summary_uns(info)
        self.predict_s = time.perf_counter() - t0

        def write_predictions(dest: Path) -> None:
            annotate_copy(path, dest, obs=obs, obsm={"X_scdeal": predicted.obsm["X_scdeal"]},
                          uns={"scdeal": uns})

        self.write_predictions = write_predictions
        return RunResult(model=model, adata=None, obs=obs, info=info, backed=True)


def _check_label_columns(label_key: str | None, labelled_key: str | None) -> None:
    """``label_key`` scores, ``labelled_key`` trains: the same column would leave nothing to
    score (every cell labelled in it trains the model)."""
    if labelled_key and label_key == labelled_key:
        raise ScdealError(f"--label-key and --labelled-key (label_key, labelled_key) both name "
                          f"{label_key!r}: every cell labelled there trains the model, so none "
                          "is left to score; give --label-key a column with the labels of "
                          "other cells, or drop it")


def check_scorable(obs: pd.DataFrame, label_key: str, label_map, known: pd.Series) -> None:
    """Before training: the cells left to score (labelled in ``label_key``, not in ``known``)
    must hold both classes.

    Examples
    --------
    >>> obs = pd.DataFrame({"truth": [1, 1, 0, 0]}, index=list("abcd"))
    >>> check_scorable(obs, "truth", None, pd.Series([1.0, None, 0.0, None], index=list("abcd")))
    """
    from ..data.labels import binary_labels

    y = binary_labels(obs, label_key, label_map)[known.reindex(obs.index).isna().to_numpy()]
    n_sens, n_res = int((y == 1).sum()), int((y == 0).sum())
    if min(n_sens, n_res) == 0:
        raise ScdealError(f"the cells not in --labelled-key have {n_sens} sensitive and {n_res} "
                          f"resistant labels in {label_key!r}: scoring needs both; label other "
                          "cells in --label-key, or drop it")


def unlabelled_metrics(obs: pd.DataFrame, label_key: str, label_map, known: pd.Series,
                       p: np.ndarray, p_pre: np.ndarray) -> dict:
    """:func:`~scdeal.model.metrics.label_metrics` on the cells with no value in ``known`` (the
    training labels), with ``scored`` saying so: the cells that trained the model are never
    scored."""
    from ..model.metrics import label_metrics

    used = known.reindex(obs.index).notna().to_numpy()
    p, p_pre = np.where(used, np.nan, p), np.where(used, np.nan, p_pre)
    out = label_metrics(obs, label_key, label_map, p, p_pre)
    out["scored"] = SCORED_UNLABELLED
    return out


def write_run(out: Path, model, adata: AnnData | None, *, read_s: float, predict_s: float,
              started: float, command: str, extra: dict | None = None,
              info: dict | None = None, write_predictions=None) -> None:
    """Write predictions, model, ``run.json`` and ``metrics.json`` into ``out`` atomically.

    The predictions are ``adata`` (annotated by ``model.predict``), or whatever
    ``write_predictions(path)`` writes, with ``info`` the prediction summary."""
    if info is None:
        info = json.loads(adata.uns["scdeal"]["summary_json"])
    timings = {"read_target": read_s, **model.training.get("timings_s", {}),
               "predict": predict_s}
    with atomic_dir(out) as tmp:
        model.save(tmp / "model")
        if write_predictions is not None:
            write_predictions(tmp / "predictions.h5ad")
        else:
            adata.write_h5ad(tmp / "predictions.h5ad")
        run = {"command": command, **(extra or {}), "drug": model.drug,
               "config": info["config"], "versions": info["versions"],
               "reliability": info.get("reliability"),
               "training": {k: v for k, v in info["training"].items() if k != "history"},
               "timings_s": {**timings, "total": time.perf_counter() - started}}
        (tmp / "run.json").write_text(json.dumps(run, indent=2))
        if "metrics" in info:
            metrics = {**info["metrics"], "before_transfer": info["metrics_before_transfer"],
                       "label_key": info["label_key"]}
            if "scored" in info:  # cells labelled for training are not scored
                metrics["scored"] = info["scored"]
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
