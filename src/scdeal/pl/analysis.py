"""Figures of the downstream analyses: gene scores, attributions, trajectory.

Each reads what the matching :mod:`scdeal.tl` function wrote into an AnnData (the key it was
given as ``key_added`` is this function's ``key``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.figure import Figure

from ..errors import ScdealError, positional_as_keywords, warn_deprecated
from ._save import RESISTANT_COLOR, SENSITIVE_COLOR, finish, require, resolve_show, start_figure
from .predictions import _old_form_adata, basis_coordinates, category_palette, draw_scatter

DIRECTION_COLORS = {"sensitive": SENSITIVE_COLOR, "resistant": RESISTANT_COLOR}
DIRECTIONS = ("sensitive", "resistant")


def gene_score_regression(adata: AnnData, *args, key: str = "gene_scores",
                          show: bool | None = None, save=None) -> Figure | None:
    """Predicted- vs truth-derived gene scores with a least-squares line, and the null
    distribution of r with the observed value, per direction.

    Parameters
    ----------
    adata
        Cells scored by :func:`scdeal.tl.gene_scores` with true labels: ``obs`` columns
        ``sensitive_score_pred``, ``sensitive_score_true``, ``resistant_score_pred``,
        ``resistant_score_true`` and ``uns[key]`` (``correlations``, ``null``).
    key
        The ``key_added`` of :func:`scdeal.tl.gene_scores`.
    show, save
        As in :func:`scdeal.pl.embedding` (``save``: a file path).

    Returns
    -------
    The Figure (four panels), or ``None`` when shown.

    ``gene_score_regression(scores, correlations, null)`` (tables first) is deprecated and will
    be removed in scdeal 0.3.

    Examples
    --------
    With the keys :func:`scdeal.tl.gene_scores` writes (here made up):

    >>> import anndata
    >>> rng = np.random.default_rng(0)
    >>> adata = anndata.AnnData(rng.poisson(1, (50, 20)).astype("float32"))
    >>> for name in ("sensitive_score_pred", "sensitive_score_true", "resistant_score_pred",
    ...              "resistant_score_true"):
    ...     adata.obs[name] = rng.random(50)
    >>> adata.uns["gene_scores"] = {
    ...     "correlations": pd.DataFrame({
    ...         "direction": ["sensitive", "resistant"], "pearson_r": [0.6, 0.4],
    ...         "p_empirical": [0.01, 0.2], "n_null": [100, 100], "n_genes_pred": [50, 50],
    ...         "n_genes_true": [50, 50]}),
    ...     "null": {"sensitive": rng.normal(0, 0.1, 100), "resistant": rng.normal(0, 0.1, 100)}}
    >>> len(gene_score_regression(adata, show=False).axes)
    4
    """
    if not isinstance(adata, AnnData):
        warn_deprecated("scdeal.pl.gene_score_regression(scores, correlations, null)",
                        "scdeal.pl.gene_score_regression(adata, key='gene_scores') after "
                        "scdeal.tl.gene_scores(adata, ...)")
        correlations = args[0]
        null = (args[1] if len(args) > 1 else None) or {}
        adata = _old_form_adata(adata)
        adata.uns[key] = {"correlations": correlations, "null": dict(null)}
        show = False if show is None else show
    elif args:
        raise TypeError(f"gene_score_regression() got unexpected arguments {args}")
    require(adata, "uns", key)
    correlations = pd.DataFrame(adata.uns[key].get("correlations"))
    null = adata.uns[key].get("null") or {}
    if correlations.empty:
        raise ScdealError("no gene-score correlations to draw: scdeal.tl.gene_scores needs "
                          "truth_key= for them")
    for row in correlations.itertuples(index=False):
        for source in ("pred", "true"):
            require(adata, "obs", f"{row.direction}_score_{source}")
    show = resolve_show(show)
    fig = start_figure(8.5, 7.2, show)
    for i, row in enumerate(correlations.itertuples(index=False)):
        d = row.direction
        x = adata.obs[f"{d}_score_pred"].to_numpy(dtype=float)
        y = adata.obs[f"{d}_score_true"].to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        ax = fig.add_subplot(2, 2, 2 * i + 1)
        ax.scatter(x[ok], y[ok], s=12, color=DIRECTION_COLORS[d], alpha=0.7, linewidths=0)
        if ok.sum() >= 2 and np.std(x[ok]) > 0:
            slope, intercept = np.polyfit(x[ok], y[ok], 1)
            grid = np.linspace(x[ok].min(), x[ok].max(), 50)
            ax.plot(grid, slope * grid + intercept, color="black", linewidth=1)
        p_emp = row.p_empirical
        p_text = f", empirical p = {p_emp:.3g} (n={row.n_null})" if np.isfinite(p_emp) else ""
        ax.set_title(f"{d}: r = {row.pearson_r:.3f}{p_text}", fontsize=9)
        ax.set_xlabel(f"{d} score from predictions ({row.n_genes_pred} genes)", fontsize=8)
        ax.set_ylabel(f"{d} score from truth ({row.n_genes_true} genes)", fontsize=8)
        ax2 = fig.add_subplot(2, 2, 2 * i + 2)
        values = np.asarray(null.get(d, []), dtype=float)
        values = values[np.isfinite(values)]
        if values.size:
            ax2.hist(values, bins=40, color="#999999")
        ax2.axvline(row.pearson_r, color=DIRECTION_COLORS[d], linewidth=2, label="observed r")
        ax2.set_title(f"{d}: r of random gene sets of the same size", fontsize=9)
        ax2.set_xlabel("Pearson r with the truth-derived score", fontsize=8)
        ax2.legend(fontsize=7)
    return finish(fig, fig, show=show, save=save)


def attribution_heatmap(attr: AnnData, *args, key: str = "critical_genes", n_top: int = 20,
                        layer: str = "ig_sensitive", label_key: str = "sens_label",
                        truth_key: str | None = None, show: bool | None = None, save=None
                        ) -> Figure | None:
    """Heatmap of the attributions of the top critical genes; cells ordered by predicted
    label, then by P(sensitive). Colours are clipped at the 99th percentile of ``|value|``.

    Parameters
    ----------
    attr
        The attribution AnnData of :func:`scdeal.tl.integrated_gradients` after
        :func:`scdeal.tl.critical_genes` (``uns[key]['sensitive']`` and ``['resistant']``
        list the genes; ``layers[layer]`` the attributions; ``obs[label_key]`` the
        predicted label and ``obs['sens_preds']`` the probability).
    key
        The ``key_added`` of :func:`scdeal.tl.critical_genes`.
    n_top
        Genes drawn per direction.
    layer, label_key, truth_key
        Attribution layer; predicted-label column; optional true-label column (a second strip).
    show, save
        As in :func:`scdeal.pl.embedding` (``save``: a file path).

    Returns
    -------
    The Figure (label strip, heatmap, colour bar), or ``None`` when shown.

    ``attribution_heatmap(attr, sensitive_genes, resistant_genes, ...)`` (gene lists by
    position) is deprecated and will be removed in scdeal 0.3.

    Examples
    --------
    >>> import anndata
    >>> rng = np.random.default_rng(0)
    >>> attr = anndata.AnnData(rng.normal(size=(50, 20)).astype("float32"))
    >>> attr.layers["ig_sensitive"] = attr.X
    >>> attr.obs["sens_label"] = [1, 0] * 25
    >>> attr.obs["sens_preds"] = rng.random(50)
    >>> attr.uns["critical_genes"] = {"sensitive": pd.DataFrame({"gene": ["0", "1"]}),
    ...                               "resistant": pd.DataFrame({"gene": ["2"]})}
    >>> len(attribution_heatmap(attr, show=False).axes)  # strip, heatmap, colour bar
    3
    """
    if args:
        if len(args) != 2:
            raise TypeError("attribution_heatmap() takes attr and keywords (or, deprecated, "
                            "attr, sensitive_genes, resistant_genes)")
        warn_deprecated("scdeal.pl.attribution_heatmap(attr, sensitive_genes, resistant_genes)",
                        "scdeal.pl.attribution_heatmap(attr, key='critical_genes') after "
                        "scdeal.tl.critical_genes(attr)")
        sensitive, resistant = list(args[0]), list(args[1])
        show = False if show is None else show
    else:
        require(attr, "uns", key)
        sensitive, resistant = (list(pd.DataFrame(attr.uns[key][d])["gene"])
                                if d in attr.uns[key] and len(attr.uns[key][d]) else []
                                for d in DIRECTIONS)
    genes = list(dict.fromkeys(sensitive[:n_top] + resistant[:n_top]))
    if not genes:
        raise ScdealError("no critical genes to draw")
    require(attr, "layers", layer)
    require(attr, "obs", label_key)
    obs = attr.obs
    prob = pd.to_numeric(obs.get("sens_preds", pd.Series(0.0, index=obs.index)),
                         errors="coerce").to_numpy()
    label = pd.to_numeric(obs[label_key].astype(object), errors="coerce").to_numpy()
    order = np.lexsort((prob, label))
    values = np.asarray(attr[:, genes].layers[layer])[order].T
    limit = float(np.nanpercentile(np.abs(values), 99)) or 1.0
    n_s = len(sensitive[:n_top])
    rows = [label[order]]
    names = ["predicted"]
    if truth_key:
        require(attr, "obs", truth_key, "give the obs column of the true labels")
        rows.append(pd.to_numeric(obs[truth_key].astype(object),
                                  errors="coerce").to_numpy()[order])
        names.append("truth")
    show = resolve_show(show)
    fig = start_figure(9, 2.2 + 0.16 * (len(genes) + 2 * len(names)), show)
    grid = fig.add_gridspec(2, 1, height_ratios=[2 * len(names), len(genes)])
    strip = fig.add_subplot(grid[0])
    from matplotlib.colors import ListedColormap

    strip.imshow(np.vstack(rows), aspect="auto", interpolation="nearest",
                 cmap=ListedColormap([RESISTANT_COLOR, SENSITIVE_COLOR]), vmin=0, vmax=1)
    strip.set_yticks(range(len(names)), names, fontsize=7)
    strip.set_xticks([])
    strip.set_title("attributions to P(sensitive) of the top critical genes "
                    "(red strip: sensitive, blue: resistant)", fontsize=9)
    ax = fig.add_subplot(grid[1])
    image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="RdBu_r",
                      vmin=-limit, vmax=limit)
    ax.set_yticks(range(len(genes)), [f"{g} (S)" if i < n_s else f"{g} (R)"
                                      for i, g in enumerate(genes)], fontsize=6)
    ax.set_xlabel("cells (ordered by predicted label, then P(sensitive))", fontsize=8)
    ax.set_xticks([])
    fig.colorbar(image, ax=ax, shrink=0.6, label="integrated gradient")
    return finish(fig, fig, show=show, save=save)


def trajectory_panels(adata: AnnData, *args, groupby: str | None = None,
                      keys=("rest_preds",), key: str = "scdeal_trajectory", n_cols: int = 3,
                      show: bool | None = None, save=None) -> Figure | None:
    """Force-directed layout coloured by group, pseudotime and ``keys``; the PAGA graph; and
    pseudotime against each key (Pearson r in the titles).

    Parameters
    ----------
    adata
        The result of :func:`scdeal.tl.trajectory`: ``uns[key]`` (its settings, with the
        layout's ``obsm`` key), ``uns['paga']``, ``obs['dpt_pseudotime']`` (with a root).
    groupby
        The cell groups (default: the ``groupby`` the trajectory was computed with).
    keys
        Numeric obs columns to draw on the layout and against pseudotime.
    key
        The ``key_added`` of :func:`scdeal.tl.trajectory`.
    n_cols
        Panels per row.
    show, save
        As in :func:`scdeal.pl.embedding` (``save``: a file path).

    Returns
    -------
    The Figure, or ``None`` when shown.

    ``trajectory_panels(traj, groupby)`` (groupby by position) is deprecated and will be
    removed in scdeal 0.3.

    Examples
    --------
    >>> import anndata
    >>> from scdeal.tl import cell_graph, trajectory
    >>> rng = np.random.default_rng(0)
    >>> adata = anndata.AnnData(rng.normal(size=(60, 30)).astype("float32"))
    >>> adata.obs["state"] = pd.Categorical(["a", "b", "c"] * 20)
    >>> adata.obs["rest_preds"] = rng.random(60)
    >>> traj = trajectory(cell_graph(adata), groupby="state", root="a")
    >>> fig = trajectory_panels(traj, keys=["rest_preds"], show=False)
    >>> len(fig.axes) >= 4
    True
    """
    if args:
        groupby = positional_as_keywords("trajectory_panels", args, ("groupby",))["groupby"]
        # The old form skipped keys the data did not have.
        keys = [k for k in keys if k in adata.obs]
        show = False if show is None else show
    require(adata, "uns", key)
    info = adata.uns[key]
    groupby = groupby or info.get("groupby")
    require(adata, "obs", groupby or "groupby", "give the obs column of the groups as groupby=")
    require(adata, "uns", "paga", "run scdeal.tl.trajectory(graph, groupby) first")
    coords, label = basis_coordinates(adata, str(info.get("layout", "X_draw_graph_fr")))
    has_time = "dpt_pseudotime" in adata.obs
    keys = list(keys)
    for name in keys:
        require(adata, "obs", name, "give numeric obs columns as keys=")
    obs = adata.obs
    panels = [(obs[groupby], f"group ({groupby})", False, "viridis")]
    if has_time:
        panels.append((obs["dpt_pseudotime"], "diffusion pseudotime", True, "viridis"))
    panels += [(obs[k], k, True, "RdBu_r" if "preds" in k else "viridis") for k in keys]
    n_scatter = len(keys) if has_time else 0
    n_map_rows = -(-(len(panels) + 1) // n_cols)
    n_rows = n_map_rows + -(-n_scatter // n_cols)
    show = resolve_show(show)
    fig = start_figure(4.2 * n_cols, 3.7 * n_rows, show)
    for i, (values, title, continuous, cmap) in enumerate(panels):
        draw_scatter(fig.add_subplot(n_rows, n_cols, i + 1), coords, values, title,
                     continuous=continuous, cmap=cmap, basis=label)
    _paga_graph(fig.add_subplot(n_rows, n_cols, len(panels) + 1), adata, groupby, coords)
    if n_scatter:
        t = obs["dpt_pseudotime"].to_numpy(dtype=float)
        labels, palette = category_palette(obs[groupby].reset_index(drop=True))
        groups = labels.to_numpy()
        for j, name in enumerate(keys):
            ax = fig.add_subplot(n_rows, n_cols, n_map_rows * n_cols + j + 1)
            v = pd.to_numeric(obs[name], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(t) & np.isfinite(v)
            for g, color in palette.items():
                m = ok & (groups == g)
                if m.any():
                    ax.scatter(t[m], v[m], s=10, color=color, label=g, linewidths=0)
            if ok.sum() > 2:
                r = np.corrcoef(t[ok], v[ok])[0, 1]
                ax.set_title(f"{name} vs pseudotime (Pearson r = {r:.3f})", fontsize=9)
            ax.set_xlabel("diffusion pseudotime", fontsize=8)
            ax.set_ylabel(name, fontsize=8)
            ax.legend(fontsize=6, frameon=False, title=groupby, title_fontsize=6)
    return finish(fig, fig, show=show, save=save)


def _paga_graph(ax, traj, groupby: str, coords: np.ndarray) -> None:
    """PAGA abstracted graph: nodes at the groups' mean layout position, edge width ~
    connectivity, node size ~ cells."""
    groups = traj.obs[groupby].astype(str)
    cats = list(traj.obs[groupby].cat.categories)
    centres = np.array([coords[(groups == c).to_numpy()].mean(0) for c in cats])
    names, palette = category_palette(pd.Series(cats))
    conn = traj.uns["paga"]["connectivities"]
    conn = conn.toarray() if hasattr(conn, "toarray") else np.asarray(conn)
    for i in range(len(cats)):
        for j in range(i + 1, len(cats)):
            if conn[i, j] > 0.05:
                ax.plot(*centres[[i, j]].T, color="black", linewidth=0.5 + 5 * conn[i, j],
                        alpha=0.6, zorder=1)
    sizes = np.array([(groups == c).sum() for c in cats], dtype=float)
    ax.scatter(*centres.T, s=100 + 900 * sizes / sizes.max(), zorder=2,
               color=[palette[n] for n in names])
    for name, (x, y) in zip(names, centres, strict=True):
        ax.annotate(name, (x, y), fontsize=8, ha="center", va="center", zorder=3)
    pad = 0.15 * (np.ptp(coords, axis=0) + 1e-9)
    ax.set_xlim(coords[:, 0].min() - pad[0], coords[:, 0].max() + pad[0])
    ax.set_ylim(coords[:, 1].min() - pad[1], coords[:, 1].max() + pad[1])
    ax.set_title(f"PAGA on {groupby} (edge width: connectivity)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
