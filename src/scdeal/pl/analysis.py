"""Figures of the downstream analyses: gene scores, attributions, trajectory, stability,
enrichment."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import ScdealError
from ._save import RESISTANT_COLOR, SENSITIVE_COLOR, new_figure
from .predictions import category_palette, scatter_panel

DIRECTION_COLORS = {"sensitive": SENSITIVE_COLOR, "resistant": RESISTANT_COLOR}


def gene_score_regression(scores: pd.DataFrame, correlations: pd.DataFrame,
                          null: dict | None = None) -> Figure:
    """Predicted- vs truth-derived gene scores with a least-squares line, and the null
    distribution of r with the observed value, per direction.

    Examples
    --------
    With the result ``res`` of :func:`scdeal.tl.gene_scores`, or tables of the same columns:

    >>> rng = np.random.default_rng(0)
    >>> scores = pd.DataFrame(rng.random((30, 4)), columns=[
    ...     "sensitive_score_pred", "sensitive_score_true", "resistant_score_pred",
    ...     "resistant_score_true"])
    >>> correlations = pd.DataFrame({"direction": ["sensitive", "resistant"],
    ...                              "pearson_r": [0.6, 0.4], "p_empirical": [0.01, 0.2],
    ...                              "n_null": [100, 100], "n_genes_pred": [50, 50],
    ...                              "n_genes_true": [50, 50]})
    >>> null = {"sensitive": rng.normal(0, 0.1, 100), "resistant": rng.normal(0, 0.1, 100)}
    >>> len(gene_score_regression(scores, correlations, null).axes)
    4
    """
    if correlations.empty:
        raise ScdealError("no gene-score correlations to draw (truth labels are needed)")
    null = null or {}
    fig = new_figure(8.5, 7.2)
    for i, row in enumerate(correlations.itertuples(index=False)):
        d = row.direction
        x = scores[f"{d}_score_pred"].to_numpy(dtype=float)
        y = scores[f"{d}_score_true"].to_numpy(dtype=float)
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
    return fig


def attribution_heatmap(attr, sensitive_genes, resistant_genes, *, n_top: int = 20,
                        layer: str = "ig_sensitive", label_key: str = "sens_label",
                        truth_key: str | None = None) -> Figure:
    """Heatmap of the attributions of the top critical genes; cells ordered by predicted
    label, then by P(sensitive). Colours are clipped at the 99th percentile of |value|.

    Examples
    --------
    With ``attr`` from :func:`scdeal.tl.integrated_gradients` and ``cg`` from
    :func:`scdeal.tl.critical_genes` (``cg.sensitive["gene"]``, ``cg.resistant["gene"]``), or:

    >>> from anndata import AnnData
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"sens_label": [1, 0] * 5, "sens_preds": rng.random(10)},
    ...                    index=[f"c{i}" for i in range(10)])
    >>> attr = AnnData(obs=obs,
    ...                var=pd.DataFrame(index=["G1", "G2", "G3"]))
    >>> attr.layers["ig_sensitive"] = rng.normal(size=(10, 3))
    >>> len(attribution_heatmap(attr, ["G1"], ["G2", "G3"]).axes)  # strip, heatmap, colour bar
    3
    """
    genes = list(dict.fromkeys(list(sensitive_genes)[:n_top] + list(resistant_genes)[:n_top]))
    if not genes:
        raise ScdealError("no critical genes to draw")
    obs = attr.obs
    prob = pd.to_numeric(obs.get("sens_preds", pd.Series(0.0, index=obs.index)),
                         errors="coerce").to_numpy()
    label = pd.to_numeric(obs[label_key].astype(object), errors="coerce").to_numpy()
    order = np.lexsort((prob, label))
    values = np.asarray(attr[:, genes].layers[layer])[order].T
    limit = float(np.nanpercentile(np.abs(values), 99)) or 1.0
    n_s = len([g for g in list(sensitive_genes)[:n_top]])
    rows = [label[order]]
    names = ["predicted"]
    if truth_key and truth_key in obs:
        rows.append(pd.to_numeric(obs[truth_key].astype(object),
                                  errors="coerce").to_numpy()[order])
        names.append("truth")
    height = 2.2 + 0.16 * (len(genes) + 2 * len(names))
    fig = new_figure(9, height)
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
    return fig


def trajectory_panels(traj, groupby: str, *, keys=("rest_preds",), n_cols: int = 3) -> Figure:
    """Force-directed layout coloured by group, pseudotime and ``keys``; the PAGA graph; and
    pseudotime against each key (Pearson r in the titles).

    Examples
    --------
    With ``traj`` from :func:`scdeal.tl.trajectory` (in use: ``"cell_color"``):

    >>> from anndata import AnnData
    >>> from scdeal.tl import cell_graph, trajectory
    >>> rng = np.random.default_rng(0)
    >>> expr = AnnData(rng.normal(size=(60, 30)).astype(np.float32),
    ...                obs=pd.DataFrame({"state": pd.Categorical(["a", "b", "c"] * 20),
    ...                                  "rest_preds": rng.random(60)},
    ...                                 index=[f"c{i}" for i in range(60)]))
    >>> traj = trajectory(cell_graph(expr), groupby="state", root="a")
    >>> fig = trajectory_panels(traj, "state", keys=["rest_preds"])
    >>> len(fig.axes) >= 4
    True
    """
    info = traj.uns.get("scdeal_trajectory", {})
    layout = info.get("layout", "X_draw_graph_fr")
    coords = traj.obsm[layout]
    has_time = "dpt_pseudotime" in traj.obs
    keys = [k for k in keys if k in traj.obs]
    panels = [(traj.obs[groupby], f"group ({groupby})", False, "viridis")]
    if has_time:
        panels.append((traj.obs["dpt_pseudotime"], "diffusion pseudotime", True, "viridis"))
    panels += [(traj.obs[k], k, True, "RdBu_r" if "preds" in k else "viridis") for k in keys]
    n_scatter = len(keys) if has_time else 0
    n_map_rows = -(-(len(panels) + 1) // n_cols)
    n_rows = n_map_rows + -(-n_scatter // n_cols)
    fig = new_figure(4.2 * n_cols, 3.7 * n_rows)
    basis = "FA" if layout.endswith("_fa") else "FR"
    for i, (values, title, continuous, cmap) in enumerate(panels):
        scatter_panel(fig.add_subplot(n_rows, n_cols, i + 1), coords, values, title,
                      continuous=continuous, cmap=cmap, basis=basis)
    _paga_graph(fig.add_subplot(n_rows, n_cols, len(panels) + 1), traj, groupby, coords)
    if n_scatter:
        t = traj.obs["dpt_pseudotime"].to_numpy(dtype=float)
        labels, palette = category_palette(traj.obs[groupby].reset_index(drop=True))
        groups = labels.to_numpy()
        for j, key in enumerate(keys):
            ax = fig.add_subplot(n_rows, n_cols, n_map_rows * n_cols + j + 1)
            v = pd.to_numeric(traj.obs[key], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(t) & np.isfinite(v)
            for g, color in palette.items():
                m = ok & (groups == g)
                if m.any():
                    ax.scatter(t[m], v[m], s=10, color=color, label=g, linewidths=0)
            if ok.sum() > 2:
                r = np.corrcoef(t[ok], v[ok])[0, 1]
                ax.set_title(f"{key} vs pseudotime (Pearson r = {r:.3f})", fontsize=9)
            ax.set_xlabel("diffusion pseudotime", fontsize=8)
            ax.set_ylabel(key, fontsize=8)
            ax.legend(fontsize=6, frameon=False, title=groupby, title_fontsize=6)
    return fig


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


def stability_boxplot(runs: pd.DataFrame, metrics=("auroc", "ap", "f1", "f1_weighted",
                                                     "mcc", "balanced_accuracy")) -> Figure:
    """Box plot (with the individual repeats) of each metric over the stability repeats.

    Examples
    --------
    >>> fig = stability_boxplot(pd.DataFrame({"auroc": [0.8, 0.85, 0.9]}))
    """
    metrics = [m for m in metrics if m in runs and runs[m].notna().any()]
    if not metrics:
        raise ScdealError("no metrics to draw in the stability table")
    fig = new_figure(1.1 * len(metrics) + 2, 4)
    ax = fig.add_subplot()
    data = [pd.to_numeric(runs[m], errors="coerce").dropna().to_numpy() for m in metrics]
    ax.boxplot(data, tick_labels=metrics, showmeans=True)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, values.size), values, s=12, color="black",
                   alpha=0.6, zorder=3)
    ax.set_ylabel("value over repeats")
    ax.set_title(f"stability: {len(runs)} repeats, stratified subsamples", fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return fig


def enrichment_barplot(table: pd.DataFrame, title: str, n_terms: int = 15) -> Figure:
    """Horizontal bars of -log10 adjusted p for the top terms (dashed line at 0.05).

    Examples
    --------
    With a table from :func:`scdeal.tl.over_representation`, or one of its columns:

    >>> table = pd.DataFrame({"term": ["APOPTOSIS", "MYC_TARGETS"], "description": ["", ""],
    ...                       "pvalue": [1e-4, 0.02], "pvalue_adj": [2e-4, 0.04],
    ...                       "overlap": [8, 5], "set_size": [160, 200]})
    >>> [t.get_text() for t in enrichment_barplot(table, "hallmark").axes[0].get_yticklabels()]
    ['MYC_TARGETS', 'APOPTOSIS']
    """
    if table.empty:
        raise ScdealError(f"no enrichment results to draw for {title}")
    top = table.sort_values(["pvalue_adj", "pvalue"], kind="stable").head(n_terms).iloc[::-1]
    labels = [(f"{t} {d}" if d and not str(d).startswith("http") else str(t))[:70]
              for t, d in zip(top["term"], top["description"], strict=True)]
    fig = new_figure(8, 1.2 + 0.28 * len(top))
    ax = fig.add_subplot()
    value = -np.log10(np.clip(top["pvalue_adj"].to_numpy(dtype=float), 1e-300, 1))
    ax.barh(range(len(top)), value, color="#4c72b0")
    ax.set_yticks(range(len(top)), labels, fontsize=7)
    ax.axvline(-np.log10(0.05), linestyle="--", color="grey")
    for i, (o, s) in enumerate(zip(top["overlap"], top["set_size"], strict=True)):
        ax.annotate(f"{o}/{s}", (value[i], i), fontsize=6, va="center",
                    xytext=(2, 0), textcoords="offset points")
    ax.set_xlabel("-log10 BH-adjusted p")
    ax.set_title(title, fontsize=9)
    return fig
