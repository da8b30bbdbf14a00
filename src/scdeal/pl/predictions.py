"""Figures of the predictions: embedding panels, ROC and precision-recall curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import ScdealError
from ._save import CATEGORY_COLORS, RESISTANT_COLOR, SENSITIVE_COLOR, new_figure

LABEL_NAMES = {0: "resistant", 1: "sensitive"}


def _is_label(values: pd.Series) -> bool:
    uniq = set(pd.to_numeric(values.astype(object), errors="coerce").dropna().unique())
    return bool(uniq) and uniq <= {0, 1}


def category_palette(values: pd.Series) -> tuple[pd.Series, dict[str, str]]:
    """Display labels and colours of a categorical column; 0/1 label columns become
    sensitive (red) / resistant (blue), so every figure colours them alike."""
    values = pd.Series(values)
    if _is_label(values):
        numeric = pd.to_numeric(values.astype(object), errors="coerce")
        labels = numeric.map(LABEL_NAMES).fillna("unlabelled")
        return labels, {"sensitive": SENSITIVE_COLOR, "resistant": RESISTANT_COLOR,
                        "unlabelled": "#bbbbbb"}
    labels = values.astype(str)
    cats = sorted(labels.unique())
    return labels, {c: CATEGORY_COLORS[i % len(CATEGORY_COLORS)] for i, c in enumerate(cats)}


def scatter_panel(ax, coords: np.ndarray, values: pd.Series, title: str, *,
                  continuous: bool | None = None, cmap: str = "viridis",
                  size: float | None = None, basis: str = "UMAP") -> None:
    """Scatter ``coords`` coloured by ``values`` (categories get a legend, numbers a colour bar).

    0/1 label columns are drawn as sensitive (red) / resistant (blue).
    """
    coords = np.asarray(coords)
    size = size or max(4.0, min(40.0, 12000 / max(len(coords), 1)))
    values = pd.Series(values).reset_index(drop=True)
    if continuous is None:
        continuous = (pd.api.types.is_float_dtype(values) and not _is_label(values)
                      and values.nunique() > 10)
    if continuous:
        v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        order = np.argsort(np.nan_to_num(v, nan=-np.inf))
        points = ax.scatter(coords[order, 0], coords[order, 1], c=v[order], s=size, cmap=cmap,
                            linewidths=0, rasterized=True)
        ax.figure.colorbar(points, ax=ax, shrink=0.7)
    else:
        labels, palette = category_palette(values)
        for cat, color in palette.items():
            mask = (labels == cat).to_numpy()
            if mask.any():
                ax.scatter(coords[mask, 0], coords[mask, 1], s=size, color=color,
                           label=f"{cat} ({int(mask.sum())})", linewidths=0, rasterized=True)
        ax.legend(fontsize=7, markerscale=1.5, frameon=False, loc="best")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{basis} 1", fontsize=8)
    ax.set_ylabel(f"{basis} 2", fontsize=8)


def prediction_panels(coords: np.ndarray, obs: pd.DataFrame, *, truth_key: str | None = None,
                      group_key: str | None = None, basis: str = "UMAP") -> Figure:
    """Embedding coloured by the truth, the predicted label, the sensitivity probability and
    a cell group (panels for absent keys are left out).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"response": [1, 0] * 10, "sens_preds": rng.random(20)})
    >>> obs["sens_label"] = (obs["sens_preds"] >= 0.5).astype(int)
    >>> fig = prediction_panels(rng.normal(size=(20, 2)), obs, truth_key="response")
    >>> [ax.get_title() for ax in fig.axes][:3]
    ['truth (response)', 'predicted label', 'P(sensitive)']
    """
    panels = []
    if truth_key and truth_key in obs:
        panels.append((obs[truth_key], f"truth ({truth_key})", False, "viridis"))
    if "sens_label" in obs:
        panels.append((obs["sens_label"], "predicted label", False, "viridis"))
    if "sens_preds" in obs:
        panels.append((obs["sens_preds"], "P(sensitive)", True, "RdBu_r"))
    if group_key and group_key in obs and group_key != truth_key:
        panels.append((obs[group_key], f"group ({group_key})", False, "viridis"))
    if not panels:
        raise ScdealError("nothing to draw: obs has no truth, prediction or group column")
    fig = new_figure(4.2 * len(panels), 3.8)
    for i, (values, title, continuous, cmap) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        scatter_panel(ax, coords, values, title, continuous=continuous, cmap=cmap, basis=basis)
    return fig


def roc_pr_curves(y_true, prob, *, prob_before=None) -> Figure:
    """ROC and precision-recall curves of ``prob`` (P(sensitive)) against 0/1 ``y_true``.

    ``prob_before`` (e.g. the pre-transfer probability) is drawn dashed for comparison.

    Examples
    --------
    >>> fig = roc_pr_curves([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    >>> len(fig.axes)
    2
    """
    from sklearn import metrics as skm

    y = pd.to_numeric(pd.Series(np.asarray(y_true, dtype=object)), errors="coerce").to_numpy()
    p = np.asarray(prob, dtype=float)
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok].astype(int), p[ok]
    if np.unique(y).size < 2:
        raise ScdealError("ROC and PR curves need labelled cells of both classes")
    fig = new_figure(8.5, 3.9)
    ax_roc, ax_pr = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    curves = [(p, "after transfer", "-")]
    if prob_before is not None:
        curves.append((np.asarray(prob_before, dtype=float)[ok], "before transfer", "--"))
    for scores, name, style in curves:
        fpr, tpr, _ = skm.roc_curve(y, scores)
        ax_roc.plot(fpr, tpr, style, label=f"{name} (AUROC {skm.roc_auc_score(y, scores):.3f})")
        prec, rec, _ = skm.precision_recall_curve(y, scores)
        ax_pr.plot(rec, prec, style, drawstyle="steps-post",
                   label=f"{name} (AP {skm.average_precision_score(y, scores):.3f})")
    ax_roc.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax_pr.axhline(y.mean(), linestyle=":", color="grey", label=f"prevalence {y.mean():.3f}")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC",
               xlim=(0, 1), ylim=(0, 1.01))
    ax_pr.set(xlabel="recall (sensitive)", ylabel="precision", title="precision-recall",
              xlim=(0, 1), ylim=(0, 1.01))
    for ax in (ax_roc, ax_pr):
        ax.legend(fontsize=7, loc="lower right" if ax is ax_roc else "lower left")
    return fig
