"""Stability test: retrain on stratified subsamples with different seeds (paper Methods
"Data sampling and repetition for stability tests").

Protocol (the paper's; the original code only varied the seed, method notes 9.2, item 19):
for each of ``repeats`` seeds s, draw ``fraction`` (80%) of the labelled cells without
replacement, stratified by the true label
(``sklearn.model_selection.train_test_split(train_size=0.8, stratify=y, random_state=s)``),
fit a fresh model with seed s on those cells, and score its predictions on the same cells.
The true labels are used only to stratify the subsample and to score it; training never sees
them (scDEAL is unsupervised on the target). The spread of the metrics over repeats measures
how much the result depends on the seed and on which cells were sampled.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import ScdealError

log = logging.getLogger(__name__)


def stratified_subsample(y, fraction: float = 0.8, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a stratified subsample drawn without replacement.

    Examples
    --------
    >>> idx = stratified_subsample(np.array([0] * 50 + [1] * 50), 0.8, seed=1)
    >>> len(idx), len(set(idx))
    (80, 80)
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    if not 0 < fraction < 1:
        raise ScdealError(f"the subsample fraction must lie in (0, 1), got {fraction!r}")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise ScdealError(f"a stratified subsample needs at least 2 cells of each class, got "
                          f"{dict(zip(classes.tolist(), counts.tolist(), strict=True))}")
    chosen, _ = train_test_split(np.arange(len(y)), train_size=fraction, stratify=y,
                                 random_state=seed)
    return np.sort(chosen)


@dataclass
class StabilityResult:
    """Per-repeat metrics, their summary, and the cells of each subsample.

    Examples
    --------
    Made by :func:`stability_test`; by hand:

    >>> StabilityResult(pd.DataFrame({"seed": [1]}), pd.DataFrame()).subsamples
    {}
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    subsamples: dict[int, list[str]] = field(default_factory=dict)


def summarize(runs: pd.DataFrame, metrics) -> pd.DataFrame:
    """Mean, SD (ddof=1), min, median and max of each metric over repeats.

    Examples
    --------
    >>> summarize(pd.DataFrame({"auroc": [0.7, 0.9]}), ["auroc"])["mean"].item()
    0.8
    """
    rows = []
    for name in metrics:
        values = pd.to_numeric(runs[name], errors="coerce").dropna()
        rows.append({"metric": name, "n": int(values.size), "mean": values.mean(),
                     "sd": values.std(ddof=1) if values.size > 1 else np.nan,
                     "min": values.min(), "median": values.median(), "max": values.max()})
    return pd.DataFrame(rows, columns=["metric", "n", "mean", "sd", "min", "median", "max"])


def stability_test(adata: AnnData, drug: str, label_key: str, *, config=None,
                   label_map: dict | None = None, repeats: int = 10, first_seed: int = 1,
                   fraction: float = 0.8, gene_ids: str = "auto", bulk=None,
                   gene_scores: bool = True, progress: bool = False,
                   key_added: str = "scdeal_stability") -> StabilityResult:
    """Retrain and score scDEAL on ``repeats`` stratified subsamples (see the module docstring).

    Parameters
    ----------
    adata
        Target cells with true labels in ``obs[label_key]`` (cells without a label are left
        out before subsampling).
    drug, gene_ids, bulk
        As for :meth:`scdeal.model.ScDEAL.fit` (the bulk data are loaded once).
    label_key, label_map
        True labels and how their values map to 1 (sensitive) / 0 (resistant).
    config
        :class:`scdeal.model.ScDealConfig` (its seed is replaced by each repeat's).
    repeats, first_seed
        Seeds ``first_seed, ..., first_seed + repeats - 1`` (the paper: 1..10).
    fraction
        Share of the cells in each subsample (paper: 0.8).
    gene_scores
        Also record the Pearson r between predicted- and truth-derived gene scores (no null).
    progress
        Show training progress bars.
    key_added
        uns key of the tables in ``adata`` (default ``scdeal_stability``; the key
        :func:`scdeal.pl.stability_boxplot` reads).

    Returns
    -------
    StabilityResult
        ``runs``: one row per repeat (seed, cells, every metric of
        :func:`scdeal.model.classification_metrics`, score correlations, seconds);
        ``summary``: mean and SD per metric; ``subsamples``: seed -> cell names.

        Written into ``adata``: ``uns[key_added]``, a dict of the tables ``runs`` and
        ``summary`` (each repeat trains on a copy; nothing else in ``adata`` changes).

    Examples
    --------
    Not run here: it trains ``repeats`` models, more than a doctest's budget
    (tests/test_tl_stability.py runs a small one).

    >>> res = stability_test(adata, "PLX4720", "response", gene_ids="entrez")  # doctest: +SKIP
    >>> res.summary.set_index("metric").loc["auroc", ["mean", "sd"]]         # doctest: +SKIP
    >>> scdeal.pl.stability_boxplot(adata, key="scdeal_stability")          # doctest: +SKIP
    """
    from ..data.labels import binary_labels
    from ..model import METRIC_NAMES, ScDEAL, ScDealConfig

    if int(repeats) < 1:
        raise ScdealError(f"repeats must be at least 1, got {repeats!r}")
    config = config or ScDealConfig()
    if label_key not in adata.obs:
        raise ScdealError(f"obs has no label column {label_key!r}; the stability test scores "
                          "predictions against true labels")
    y_all = binary_labels(adata.obs, label_key, label_map)
    keep = y_all.notna().to_numpy()
    cells = adata.obs_names[keep]
    y = y_all[keep].astype(int).to_numpy()
    if bulk is None:
        from ..data.gdsc import load_gdsc

        bulk = load_gdsc()
    rows, subsamples = [], {}
    for seed in range(first_seed, first_seed + int(repeats)):
        t0 = time.perf_counter()
        idx = stratified_subsample(y, fraction, seed)
        sub = adata[cells[idx]].copy()
        model = ScDEAL(config.replace(seed=seed))
        model.fit(sub, drug, bulk=bulk, gene_ids=gene_ids, progress=progress)
        model.predict(sub, label_key=label_key, label_map=label_map)
        row = {"seed": seed, "n_cells": len(idx), "n_sensitive": int(y[idx].sum()),
               **{k: sub.uns["scdeal"]["metrics"][k] for k in METRIC_NAMES}}
        if gene_scores:
            row.update(_score_correlations(model, sub, y[idx]))
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        subsamples[seed] = list(map(str, sub.obs_names))
        log.info("stability repeat seed %d: AUROC %.3f, F1 %.3f", seed, row["auroc"], row["f1"])
    runs = pd.DataFrame(rows)
    metrics = [m for m in runs.columns if m not in ("seed", "n_cells", "n_sensitive", "seconds")]
    result = StabilityResult(runs, summarize(runs, metrics), subsamples)
    adata.uns[key_added] = {"runs": result.runs, "summary": result.summary}
    return result


def _score_correlations(model, sub: AnnData, y: np.ndarray) -> dict[str, float]:
    from .gene_scores import GeneScoreConfig
    from .gene_scores import gene_scores as compute

    expr = model.prepare_target(sub)
    obs = sub.obs.reindex(expr.obs_names)
    truth = pd.Series(y, index=sub.obs_names).reindex(expr.obs_names)
    try:
        scored = AnnData(expr.X, obs=pd.DataFrame({"sens_label": obs["sens_label"],
                                                   "truth": truth}, index=expr.obs_names),
                         var=pd.DataFrame(index=expr.var_names))
        res = compute(scored, "sens_label", "truth", GeneScoreConfig(n_null=0))
    except ScdealError as exc:  # e.g. every cell predicted the same: no predicted groups
        log.warning("stability: gene scores skipped (%s)", exc)
        return {"score_r_sensitive": np.nan, "score_r_resistant": np.nan}
    r = res.correlations.set_index("direction")["pearson_r"]
    return {"score_r_sensitive": float(r.get("sensitive", np.nan)),
            "score_r_resistant": float(r.get("resistant", np.nan))}
