"""Figures of result tables that are not per-cell data: stability repeats and enrichment.

Their natural input is a table (as ``scanpy.pl.rank_genes_groups`` reads a result rather than
the matrix), so they take it first; like every scdeal plot they take ``ax=``, ``show=`` and
``save=`` and return the Axes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import ScdealError, positional_as_keywords
from ._save import finish, require, resolve_show, start_axes

STABILITY_METRICS = ("auroc", "ap", "f1", "f1_weighted", "mcc", "balanced_accuracy")


def stability_boxplot(runs: pd.DataFrame | AnnData, *args, metrics=STABILITY_METRICS,
                      key: str = "scdeal_stability", ax=None, show: bool | None = None,
                      save=None):
    """Box plot (with the individual repeats) of each metric over the stability repeats.

    Parameters
    ----------
    runs
        The per-repeat table (``StabilityResult.runs``, ``stability_runs.csv``), or the
        AnnData given to :func:`scdeal.tl.stability_test`, which keeps it in
        ``uns[key]['runs']``.
    metrics
        Columns to draw (those absent or empty are left out).
    key
        The ``key_added`` of :func:`scdeal.tl.stability_test` (with an AnnData).
    ax
        Draw into this Axes instead of a new figure.
    show, save
        As in :func:`scdeal.pl.embedding` (``save``: a file path).

    Returns
    -------
    The Axes, or ``None`` when shown.

    Passing ``metrics`` by position is deprecated and will be removed in scdeal 0.3.

    Examples
    --------
    >>> ax = stability_boxplot(pd.DataFrame({"auroc": [0.8, 0.85, 0.9]}), show=False)
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['auroc']
    """
    if args:
        metrics = positional_as_keywords("stability_boxplot", args, ("metrics",))["metrics"]
        show = False if show is None else show
    if isinstance(runs, AnnData):
        require(runs, "uns", key)
        runs = pd.DataFrame(runs.uns[key]["runs"])
    metrics = [m for m in metrics if m in runs and runs[m].notna().any()]
    if not metrics:
        raise ScdealError("no metrics to draw in the stability table")
    show = resolve_show(show)
    ax = start_axes(ax, 1.1 * len(metrics) + 2, 4, show)
    data = [pd.to_numeric(runs[m], errors="coerce").dropna().to_numpy() for m in metrics]
    ax.boxplot(data, tick_labels=metrics, showmeans=True)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, values.size), values, s=12, color="black",
                   alpha=0.6, zorder=3)
    ax.set_ylabel("value over repeats")
    ax.set_title(f"stability: {len(runs)} repeats, stratified subsamples", fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return finish(ax.figure, ax, show=show, save=save)


def enrichment_barplot(table: pd.DataFrame, *args, title: str = "enrichment",
                       n_terms: int = 15, ax=None, show: bool | None = None, save=None):
    """Horizontal bars of -log10 adjusted p for the top terms (dashed line at 0.05).

    Parameters
    ----------
    table
        A result of :func:`scdeal.tl.over_representation` (or ``enrichment_*.csv``).
    title
        Axes title.
    n_terms
        Terms drawn, by adjusted p.
    ax
        Draw into this Axes instead of a new figure.
    show, save
        As in :func:`scdeal.pl.embedding` (``save``: a file path).

    Returns
    -------
    The Axes, or ``None`` when shown.

    Passing ``title`` or ``n_terms`` by position is deprecated and will be removed in
    scdeal 0.3.

    Examples
    --------
    >>> table = pd.DataFrame({"term": ["APOPTOSIS", "MYC_TARGETS"], "description": ["", ""],
    ...                       "pvalue": [1e-4, 0.02], "pvalue_adj": [2e-4, 0.04],
    ...                       "overlap": [8, 5], "set_size": [160, 200]})
    >>> ax = enrichment_barplot(table, title="hallmark", show=False)
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['MYC_TARGETS', 'APOPTOSIS']
    """
    if args:
        old = positional_as_keywords("enrichment_barplot", args, ("title", "n_terms"))
        title, n_terms = old.get("title", title), old.get("n_terms", n_terms)
        show = False if show is None else show
    if table.empty:
        raise ScdealError(f"no enrichment results to draw for {title}")
    top = table.sort_values(["pvalue_adj", "pvalue"], kind="stable").head(n_terms).iloc[::-1]
    labels = [(f"{t} {d}" if d and not str(d).startswith("http") else str(t))[:70]
              for t, d in zip(top["term"], top["description"].fillna(""), strict=True)]
    show = resolve_show(show)
    ax = start_axes(ax, 8, 1.2 + 0.28 * len(top), show)
    value = -np.log10(np.clip(top["pvalue_adj"].to_numpy(dtype=float), 1e-300, 1))
    ax.barh(range(len(top)), value, color="#4c72b0")
    ax.set_yticks(range(len(top)), labels, fontsize=7)
    ax.axvline(-np.log10(0.05), linestyle="--", color="grey")
    for i, (o, s) in enumerate(zip(top["overlap"], top["set_size"], strict=True)):
        ax.annotate(f"{o}/{s}", (value[i], i), fontsize=6, va="center",
                    xytext=(2, 0), textcoords="offset points")
    ax.set_xlabel("-log10 BH-adjusted p")
    ax.set_title(title, fontsize=9)
    return finish(ax.figure, ax, show=show, save=save)
