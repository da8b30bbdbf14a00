"""Figures of the predictions: embedding panels, ROC and precision-recall curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.figure import Figure

from ..errors import ScdealError, warn_deprecated
from ._save import (
    CATEGORY_COLORS,
    RESISTANT_COLOR,
    SENSITIVE_COLOR,
    finish,
    require,
    resolve_show,
    start_axes,
    start_figure,
)

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


def draw_scatter(ax, coords: np.ndarray, values: pd.Series, title: str, *,
                 continuous: bool | None = None, cmap: str = "viridis",
                 size: float | None = None, basis: str = "UMAP") -> None:
    """Scatter ``coords`` into ``ax`` coloured by ``values`` (categories get a legend,
    numbers a colour bar); 0/1 label columns are drawn sensitive (red) / resistant (blue)."""
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


def basis_coordinates(adata: AnnData, basis: str) -> tuple[np.ndarray, str]:
    """The first two columns of ``adata.obsm['X_<basis>']`` (scanpy's naming; ``basis`` may
    also be the full key) and the axis label (``UMAP``, ``SCDEAL``, ...)."""
    key = basis if basis in adata.obsm or basis.startswith("X_") else f"X_{basis}"
    require(adata, "obsm", key, "compute that embedding first")
    coords = np.asarray(adata.obsm[key])
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ScdealError(f"adata.obsm[{key!r}] has shape {coords.shape}; a plot needs at least "
                          "2 columns")
    return coords[:, :2], key.removeprefix("X_").removeprefix("draw_graph_").upper()


def embedding(adata: AnnData, *, color: str = "sens_preds", basis: str = "umap",
              title: str | None = None, continuous: bool | None = None, cmap: str | None = None,
              size: float | None = None, ax=None, show: bool | None = None, save=None):
    """One embedding panel coloured by an obs column (``scanpy.pl.embedding`` for scdeal's
    columns: 0/1 labels red/blue, probabilities on a diverging scale).

    Parameters
    ----------
    adata
        Cells with ``obsm['X_<basis>']`` and ``obs[color]``.
    color
        obs column; ``sens_preds`` (P(sensitive), written by ``model.predict``) by default.
    basis
        Embedding: ``umap`` reads ``obsm['X_umap']``, ``scdeal`` the model's
        ``obsm['X_scdeal']`` (its first two dimensions).
    title, continuous, cmap, size
        Panel title (default ``color``); draw the values as numbers (default: float columns
        with more than 10 values that are not 0/1 labels); colour map (default ``RdBu_r`` for
        columns ending in ``preds``, else ``viridis``); point size.
    ax
        Draw into this Axes instead of a new figure.
    show
        Show the figure (``None``: as ``scanpy.settings.autoshow``, and never on a backend
        that only writes files, such as Agg).
    save
        A file path (``figures/umap.png``; the extension decides the format).

    Returns
    -------
    The Axes, or ``None`` when the figure was shown.

    Examples
    --------
    >>> import anndata
    >>> rng = np.random.default_rng(0)
    >>> adata = anndata.AnnData(rng.poisson(1, (50, 20)).astype("float32"))
    >>> adata.obs["sens_preds"] = rng.random(50)
    >>> adata.obsm["X_umap"] = rng.normal(size=(50, 2))
    >>> ax = embedding(adata, color="sens_preds", show=False)
    >>> ax.get_title(), ax.get_xlabel()
    ('sens_preds', 'UMAP 1')
    """
    coords, label = basis_coordinates(adata, basis)
    require(adata, "obs", color, "give an obs column as color=")
    show = resolve_show(show)
    ax = start_axes(ax, 4.8, 3.8, show)
    draw_scatter(ax, coords, adata.obs[color], title or color, continuous=continuous,
                 cmap=cmap or ("RdBu_r" if color.endswith("preds") else "viridis"),
                 size=size, basis=label)
    return finish(ax.figure, ax, show=show, save=save)


def scatter_panel(ax, coords: np.ndarray, values: pd.Series, title: str, *,
                  continuous: bool | None = None, cmap: str = "viridis",
                  size: float | None = None, basis: str = "UMAP") -> None:
    """Deprecated: use :func:`embedding` (``embedding(adata, color=..., ax=ax)``).

    Examples
    --------
    >>> import warnings
    >>> from scdeal.pl import new_figure
    >>> ax = new_figure(3, 3).add_subplot()
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     scatter_panel(ax, np.zeros((3, 2)), pd.Series([0, 1, 1]), "label")
    >>> caught[0].category.__name__
    'FutureWarning'
    """
    warn_deprecated("scdeal.pl.scatter_panel(ax, coords, values, title)",
                    "scdeal.pl.embedding(adata, color=..., basis=..., ax=ax)")
    draw_scatter(ax, coords, values, title, continuous=continuous, cmap=cmap, size=size,
                 basis=basis)


def _old_form_adata(obs: pd.DataFrame, obsm: dict | None = None) -> AnnData:
    """An AnnData around the tables an old call form passed (string cell names)."""
    obs = pd.DataFrame(obs).copy()
    obs.index = obs.index.astype(str)
    return AnnData(obs=obs, obsm={k: np.asarray(v) for k, v in (obsm or {}).items()})


def prediction_panels(adata: AnnData, *args, basis: str = "umap", truth_key: str | None = None,
                      groupby: str | None = None, key_prefix: str = "",
                      show: bool | None = None, save=None, **old) -> Figure | None:
    """Embedding coloured by the truth, the predicted label, P(sensitive) and a cell group,
    side by side (panels for keys not asked for are left out).

    Parameters
    ----------
    adata
        Cells with ``obsm['X_<basis>']`` and the predictions ``model.predict`` writes:
        ``obs['sens_label']`` and ``obs['sens_preds']`` (at least one of them).
    basis
        Embedding, as in :func:`embedding`.
    truth_key, groupby
        obs columns of the true labels and of a cell grouping (optional).
    key_prefix
        The ``key_prefix`` given to ``model.predict``.
    show, save
        As in :func:`embedding` (``save``: a file path).

    Returns
    -------
    The Figure (several panels, like scanpy's ``return_fig=True``), or ``None`` when shown.

    ``prediction_panels(coords, obs, truth_key=..., group_key=..., basis="UMAP")`` (arrays
    first) is deprecated and will be removed in scdeal 0.3.

    Examples
    --------
    >>> import anndata
    >>> rng = np.random.default_rng(0)
    >>> adata = anndata.AnnData(rng.poisson(1, (50, 20)).astype("float32"))
    >>> adata.obs["response"] = [1, 0] * 25
    >>> adata.obs["sens_preds"] = rng.random(50)
    >>> adata.obs["sens_label"] = (adata.obs["sens_preds"] >= 0.5).astype(int)
    >>> adata.obsm["X_umap"] = rng.normal(size=(50, 2))
    >>> fig = prediction_panels(adata, truth_key="response", show=False)
    >>> [ax.get_title() for ax in fig.axes][:3]
    ['truth (response)', 'predicted label', 'P(sensitive)']
    """
    if not isinstance(adata, AnnData):
        warn_deprecated("scdeal.pl.prediction_panels(coords, obs, ...)",
                        "scdeal.pl.prediction_panels(adata, basis=..., truth_key=..., "
                        "groupby=...)")
        coords, obs = adata, (args[0] if args else old.pop("obs"))
        name = old.pop("basis", basis if basis != "umap" else "UMAP")
        groupby = old.pop("group_key", groupby)
        # The old form skipped the panels of keys obs did not have.
        truth_key = truth_key if truth_key in obs else None
        groupby = groupby if groupby in obs else None
        adata, basis, args = _old_form_adata(obs, {f"X_{name}": coords}), name, ()
        show = False if show is None else show
    if args or old:
        raise TypeError(f"prediction_panels() got unexpected arguments {args or list(old)}")
    coords, label = basis_coordinates(adata, basis)
    obs = adata.obs
    panels = []
    if truth_key:
        require(adata, "obs", truth_key, "give the obs column of the true labels")
        panels.append((obs[truth_key], f"truth ({truth_key})", False, "viridis"))
    if f"{key_prefix}sens_label" in obs:
        panels.append((obs[f"{key_prefix}sens_label"], "predicted label", False, "viridis"))
    if f"{key_prefix}sens_preds" in obs:
        panels.append((obs[f"{key_prefix}sens_preds"], "P(sensitive)", True, "RdBu_r"))
    if not panels:
        require(adata, "obs", f"{key_prefix}sens_preds")
    if groupby and groupby != truth_key:
        require(adata, "obs", groupby, "give an obs column of cell groups as groupby=")
        panels.append((obs[groupby], f"group ({groupby})", False, "viridis"))
    show = resolve_show(show)
    fig = start_figure(4.2 * len(panels), 3.8, show)
    for i, (values, title, continuous, cmap) in enumerate(panels):
        draw_scatter(fig.add_subplot(1, len(panels), i + 1), coords, values, title,
                     continuous=continuous, cmap=cmap, basis=label)
    return finish(fig, fig, show=show, save=save)


def roc_pr_curves(adata: AnnData, *args, truth_key: str | None = None,
                  label_map: dict | None = None, key_prefix: str = "", before: bool = True,
                  show: bool | None = None, save=None, **old) -> Figure | None:
    """ROC and precision-recall curves of P(sensitive) against the true labels.

    Parameters
    ----------
    adata
        Cells with ``obs['sens_preds']`` (``model.predict``) and true labels.
    truth_key
        obs column of the true labels (1/0, or values such as sensitive/resistant; see
        ``label_map``); default: the ``label_key`` that ``model.predict`` recorded in
        ``uns['scdeal']``.
    label_map
        How the truth's values map to 1 (sensitive) / 0 (resistant), as for ``predict``.
    key_prefix
        The ``key_prefix`` given to ``model.predict``.
    before
        Also draw, dashed, the pre-transfer probability ``obs['sens_preds_pret']`` when present.
    show, save
        As in :func:`embedding` (``save``: a file path).

    Returns
    -------
    The Figure (two panels), or ``None`` when shown.

    ``roc_pr_curves(y_true, prob, prob_before=...)`` (arrays first) is deprecated and will be
    removed in scdeal 0.3.

    Examples
    --------
    >>> import anndata
    >>> adata = anndata.AnnData(np.zeros((4, 2), dtype="float32"))
    >>> adata.obs["response"] = ["resistant", "resistant", "sensitive", "sensitive"]
    >>> adata.obs["sens_preds"] = [0.1, 0.6, 0.4, 0.9]
    >>> fig = roc_pr_curves(adata, truth_key="response", show=False)
    >>> [ax.get_title() for ax in fig.axes]
    ['ROC', 'precision-recall']
    """
    if not isinstance(adata, AnnData):
        warn_deprecated("scdeal.pl.roc_pr_curves(y_true, prob, prob_before=...)",
                        "scdeal.pl.roc_pr_curves(adata, truth_key=...)")
        prob = args[0] if args else old.pop("prob")
        prob_before = old.pop("prob_before", None)
        y = pd.to_numeric(pd.Series(np.asarray(adata, dtype=object)), errors="coerce")
        show = False if show is None else show
        return _draw_roc_pr(y.to_numpy(dtype=float), np.asarray(prob, dtype=float),
                            None if prob_before is None else np.asarray(prob_before, dtype=float),
                            show=resolve_show(show), save=save)
    if args or old:
        raise TypeError(f"roc_pr_curves() got unexpected arguments {args or list(old)}")
    from ..data.labels import binary_labels

    if truth_key is None:
        truth_key = adata.uns.get(f"{key_prefix}scdeal", {}).get("label_key")
        if truth_key is None:
            raise ScdealError("no true labels: pass truth_key= (an obs column), or predict "
                              "with label_key=")
    require(adata, "obs", truth_key, "give the obs column of the true labels as truth_key=")
    require(adata, "obs", f"{key_prefix}sens_preds")
    y = binary_labels(adata.obs, truth_key, label_map).to_numpy(dtype=float)
    p_before = adata.obs.get(f"{key_prefix}sens_preds_pret") if before else None
    return _draw_roc_pr(y, adata.obs[f"{key_prefix}sens_preds"].to_numpy(dtype=float),
                        None if p_before is None else p_before.to_numpy(dtype=float),
                        show=resolve_show(show), save=save)


def _draw_roc_pr(y: np.ndarray, p: np.ndarray, p_before: np.ndarray | None, *, show: bool,
                 save) -> Figure | None:
    from sklearn import metrics as skm

    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok].astype(int), p[ok]
    if np.unique(y).size < 2:
        raise ScdealError("ROC and PR curves need labelled cells of both classes")
    fig = start_figure(8.5, 3.9, show)
    ax_roc, ax_pr = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    curves = [(p, "after transfer", "-")]
    if p_before is not None:
        curves.append((p_before[ok], "before transfer", "--"))
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
    return finish(fig, fig, show=show, save=save)
