"""Cell graph, embeddings and trajectory inference (paper Methods "Trajectory inference").

The paper computes PAGA on the cell groups and diffusion pseudotime rooted at the primary-site
(parental) cells, then correlates pseudotime with the predicted resistance and with the gene
scores (Pearson). The original ``trajectory()`` rooted at "the first sensitive cell", used
Spearman, and log-transformed and scaled ``adata.X`` in place (method notes 9.5, item 20 and
section 12 item 16). Here every step works on a private copy, the root is chosen from a group
the user names (:func:`choose_root`), and both Pearson and Spearman are reported.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from importlib.util import find_spec

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from ..data.neighbors import neighbors
from ..errors import ScdealError, warn_deprecated

log = logging.getLogger(__name__)


@dataclass
class GraphConfig:
    """Neighbour graph settings.

    Attributes
    ----------
    use_rep
        ``None``: PCA of the expression matrix; or an ``obsm`` key (e.g. ``X_scdeal``, the
        model's transferred embedding).
    n_pcs
        Principal components (capped by the data size).
    n_neighbors
        Neighbours per cell.
    n_dcs
        Diffusion components used by DPT.
    seed
        Seed of PCA, UMAP and the force-directed layout.

    Examples
    --------
    >>> GraphConfig(use_rep="X_scdeal").n_neighbors
    15
    """

    use_rep: str | None = None
    n_pcs: int = 30
    n_neighbors: int = 15
    n_dcs: int = 10
    seed: int = 0


def cell_graph(expr: AnnData, config: GraphConfig | None = None, *,
               obsm: dict | None = None, key_added: str = "scdeal_graph") -> AnnData:
    """A new AnnData holding ``expr``'s matrix (shared, never changed), PCA or the chosen
    representation, the neighbour graph and a UMAP.

    Parameters
    ----------
    expr
        Normalised expression (e.g. ``model.prepare_target(adata)``); its obs are copied.
    config
        :class:`GraphConfig`.
    obsm
        Representations to copy in (e.g. ``{"X_scdeal": adata.obsm["X_scdeal"]}`` for
        ``GraphConfig(use_rep="X_scdeal")``).
    key_added
        uns key of the settings (default ``scdeal_graph``).

    Returns
    -------
    AnnData
        ``expr`` is left as it is (a graph of a matrix that other analyses share), so unlike
        ``scanpy.pp.neighbors`` the keys are written into this new AnnData:
        ``obsm['X_pca']`` (without ``use_rep``), ``obsp['distances']``,
        ``obsp['connectivities']``, ``uns['neighbors']``, ``obsm['X_umap']``,
        ``uns['umap']`` and ``uns[key_added]`` (the settings).

    Examples
    --------
    In use, ``cell_graph(model.prepare_target(adata))``; on 60 random cells:

    >>> rng = np.random.default_rng(0)
    >>> expr = AnnData(rng.normal(size=(60, 30)).astype(np.float32),
    ...                obs=pd.DataFrame({"state": pd.Categorical(["a", "b", "c"] * 20)},
    ...                                 index=[f"c{i}" for i in range(60)]))
    >>> graph = cell_graph(expr)
    >>> graph.obsm["X_umap"].shape, graph.X is expr.X
    ((60, 2), True)
    """
    import scanpy as sc

    config = config or GraphConfig()
    if expr.n_obs < 5:
        raise ScdealError(f"a cell graph needs at least 5 cells, got {expr.n_obs}")
    ad = AnnData(X=expr.X, obs=expr.obs.copy(), var=pd.DataFrame(index=expr.var_names))
    for key, value in (obsm or {}).items():
        ad.obsm[key] = np.asarray(value)
    rep = config.use_rep
    if rep is None:
        n_comps = max(2, min(config.n_pcs, ad.n_obs - 1, ad.n_vars - 1))
        X = np.asarray(ad.X.todense() if hasattr(ad.X, "todense") else ad.X, dtype=np.float64)
        pca = AnnData(X=X)
        sc.pp.pca(pca, n_comps=n_comps, random_state=config.seed)
        ad.obsm["X_pca"] = pca.obsm["X_pca"]
        rep = "X_pca"
    elif rep not in ad.obsm:
        raise ScdealError(f"representation {rep!r} is not in obsm (has "
                          f"{', '.join(ad.obsm) or 'nothing'}); use None for PCA")
    neighbors(ad, use_rep=rep, n_neighbors=min(config.n_neighbors, ad.n_obs - 1),
              random_state=config.seed)
    sc.tl.umap(ad, random_state=config.seed)
    ad.uns[key_added] = {**asdict(config), "use_rep": rep}
    return ad


def choose_root(diffmap: np.ndarray, in_root: np.ndarray) -> int:
    """Index of the root cell: the root group's cell at the extreme of the first non-trivial
    diffusion component (``X_diffmap[:, 1]``), on the side away from the other cells.

    If the group's median on that component is below the other cells' median the root is the
    group's minimum, otherwise its maximum; so the root is the group cell farthest from the
    rest along the main diffusion axis (Haghverdi et al. 2016 choose tips the same way).

    Examples
    --------
    >>> dc = np.array([[1, 0.5], [1, -0.9], [1, -0.2], [1, 0.8]])
    >>> choose_root(dc, np.array([False, True, True, False]))
    1
    """
    in_root = np.asarray(in_root, dtype=bool)
    if not in_root.any():
        raise ScdealError("the root group has no cells")
    dc1 = np.asarray(diffmap)[:, 1]
    group, rest = dc1[in_root], dc1[~in_root]
    candidates = np.flatnonzero(in_root)
    low = rest.size and np.median(group) < np.median(rest)
    return int(candidates[np.argmin(group) if low else np.argmax(group)])


def trajectory(graph: AnnData, groupby: str, root: str | None = None,
               config: GraphConfig | None = None, *,
               key_added: str = "scdeal_trajectory") -> AnnData:
    """Diffusion map, diffusion pseudotime, PAGA and a force-directed layout.

    Parameters
    ----------
    graph
        Output of :func:`cell_graph` (it is copied, not changed).
    groupby
        obs column of cell groups for PAGA (e.g. ``cell_color``).
    root
        A value of ``groupby`` whose cells start the trajectory (e.g. the parental cells);
        ``None`` skips the pseudotime.
    config
        :class:`GraphConfig` (``n_dcs`` and ``seed`` are used).
    key_added
        uns key of the trajectory's settings (default ``scdeal_trajectory``; the key
        :func:`scdeal.pl.trajectory_panels` reads).

    Returns
    -------
    AnnData
        A copy (``graph`` is not changed) with ``obs[groupby]`` made categorical,
        ``obsm['X_diffmap']``, ``uns['diffmap_evals']``, with a root ``uns['iroot']`` and
        ``obs['dpt_pseudotime']``, ``uns['paga']``, ``uns['<groupby>_sizes']``, ``obsm['X_draw_graph_fa']``
        (ForceAtlas2 when ``fa2-modified`` is installed) or ``obsm['X_draw_graph_fr']``
        (igraph's Fruchterman-Reingold otherwise), ``uns['draw_graph']`` and
        ``uns[key_added]`` (groupby, root group and cell, layout key, settings).

    Examples
    --------
    On 60 random cells in three states (in use: ``groupby="cell_color", root="HN120P"``):

    >>> rng = np.random.default_rng(0)
    >>> expr = AnnData(rng.normal(size=(60, 30)).astype(np.float32),
    ...                obs=pd.DataFrame({"state": pd.Categorical(["a", "b", "c"] * 20)},
    ...                                 index=[f"c{i}" for i in range(60)]))
    >>> traj = trajectory(cell_graph(expr), groupby="state", root="a")
    >>> traj.uns["scdeal_trajectory"]["root_group"], "dpt_pseudotime" in traj.obs
    ('a', True)
    """
    import scanpy as sc

    config = config or GraphConfig()
    if "neighbors" not in graph.uns:
        raise ScdealError("trajectory needs a neighbour graph; build it with cell_graph()")
    if groupby not in graph.obs:
        raise ScdealError(f"obs has no column {groupby!r} to group cells by; its columns are "
                          f"{', '.join(map(str, graph.obs.columns))}")
    ad = graph.copy()
    groups = ad.obs[groupby]
    if groups.isna().any():
        raise ScdealError(f"{int(groups.isna().sum())} cells have no value in {groupby!r}")
    ad.obs[groupby] = pd.Categorical(groups.astype(str))
    sc.tl.diffmap(ad, n_comps=max(3, min(15, ad.n_obs - 2)), random_state=config.seed)
    info = {"groupby": groupby, "root_group": None, "root_cell": None, **asdict(config)}
    if root is not None:
        in_root = (ad.obs[groupby].astype(str) == str(root)).to_numpy()
        if not in_root.any():
            shown = ", ".join(map(str, ad.obs[groupby].cat.categories[:20]))
            raise ScdealError(f"root group {root!r} is not a value of {groupby!r} ({shown})")
        iroot = choose_root(ad.obsm["X_diffmap"], in_root)
        ad.uns["iroot"] = iroot
        sc.tl.dpt(ad, n_dcs=min(config.n_dcs, ad.obsm["X_diffmap"].shape[1]))
        info.update(root_group=str(root), root_cell=str(ad.obs_names[iroot]))
    _paga(ad, groupby)
    layout = "fa" if find_spec("fa2_modified") is not None else "fr"
    sc.tl.draw_graph(ad, layout=layout, random_state=config.seed)
    info["layout"] = f"X_draw_graph_{layout}"
    ad.uns[key_added] = info
    return ad


def _paga(ad: AnnData, groupby: str) -> None:
    """``scanpy.tl.paga``; where no neighbour edge joins two groups, scanpy (with current
    scipy) fails building the empty graph between them, so the result it would give is
    written directly: every group connectivity 0, the group sizes as scanpy records them."""
    import scanpy as sc
    import scipy.sparse as sp

    try:
        sc.tl.paga(ad, groups=groupby)
    except ValueError as err:
        if "mismatching number of index arrays" not in str(err):
            raise
        n = len(ad.obs[groupby].cat.categories)
        ad.uns["paga"] = {"connectivities": sp.csr_matrix((n, n)),
                          "connectivities_tree": sp.csr_matrix((n, n)), "groups": groupby}
        ad.uns[f"{groupby}_sizes"] = ad.obs[groupby].value_counts(sort=False).to_numpy()
        log.info("PAGA: no neighbour edge joins the groups of %r; their connectivities are 0",
                 groupby)


def pseudotime_correlations(adata: AnnData, keys, *, pseudotime_key: str = "dpt_pseudotime",
                            key_added: str = "pseudotime_correlations") -> pd.DataFrame:
    """Pearson and Spearman correlation of pseudotime with each obs column in ``keys``.

    Cells with a non-finite pseudotime (disconnected from the root) or value are left out;
    keys that are not obs columns are skipped.

    Parameters
    ----------
    adata
        Cells with ``obs[pseudotime_key]`` (the result of :func:`trajectory` with a root).
    keys
        obs columns to correlate (e.g. ``rest_preds``, the gene scores).
    pseudotime_key
        obs column of the pseudotime.
    key_added
        uns key of the table (default ``pseudotime_correlations``).

    Returns
    -------
    DataFrame
        One row per key: cells, Pearson r and p, Spearman rho and p. Written into ``adata``:
        ``uns[key_added]`` (the same table).

    ``pseudotime_correlations(obs, keys)`` (a DataFrame first) is deprecated and will be
    removed in scdeal 0.3; it writes nothing.

    Examples
    --------
    >>> adata = AnnData(obs=pd.DataFrame({"dpt_pseudotime": [0, .2, .5, 1],
    ...                                   "rest_preds": [.1, .3, .4, .9]},
    ...                                  index=["a", "b", "c", "d"]))
    >>> pseudotime_correlations(adata, ["rest_preds"])["spearman_rho"].item()
    1.0
    >>> adata.uns["pseudotime_correlations"]["variable"].tolist()
    ['rest_preds']
    """
    if isinstance(adata, pd.DataFrame):
        warn_deprecated("scdeal.tl.pseudotime_correlations(obs, keys)",
                        "scdeal.tl.pseudotime_correlations(adata, keys)")
        return _pseudotime_correlations(adata, keys, pseudotime_key)
    table = _pseudotime_correlations(adata.obs, keys, pseudotime_key)
    adata.uns[key_added] = table
    return table


def _pseudotime_correlations(obs: pd.DataFrame, keys, pseudotime_key: str) -> pd.DataFrame:
    if pseudotime_key not in obs:
        raise ScdealError(f"adata.obs has no {pseudotime_key!r}; run "
                          "scdeal.tl.trajectory(graph, groupby, root=...) first")
    t = pd.to_numeric(obs[pseudotime_key], errors="coerce").to_numpy(dtype=float)
    rows = []
    for key in keys:
        if key not in obs:
            continue
        v = pd.to_numeric(obs[key], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(t) & np.isfinite(v)
        row = {"variable": key, "n_cells": int(ok.sum()), "pearson_r": np.nan,
               "pearson_p": np.nan, "spearman_rho": np.nan, "spearman_p": np.nan}
        if ok.sum() >= 3 and np.std(t[ok]) > 0 and np.std(v[ok]) > 0:
            r, p = stats.pearsonr(t[ok], v[ok])
            rho, p_s = stats.spearmanr(t[ok], v[ok])
            row.update(pearson_r=float(r), pearson_p=float(p), spearman_rho=float(rho),
                       spearman_p=float(p_s))
        rows.append(row)
    return pd.DataFrame(rows, columns=["variable", "n_cells", "pearson_r", "pearson_p",
                                       "spearman_rho", "spearman_p"])
