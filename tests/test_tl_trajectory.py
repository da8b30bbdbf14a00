"""Cell graph and trajectory on a synthetic path with a known order; root choice;
pseudotime correlations against scipy; the input matrix is never changed; bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import stats

from scdeal.errors import ScdealError
from scdeal.tl import GraphConfig, cell_graph, choose_root, pseudotime_correlations, trajectory


@pytest.fixture(scope="module")
def path_cells():
    """150 cells along a curved 1-D path in 40 genes; groups start/middle/end by position."""
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 1, 150))
    loadings = rng.normal(size=(3, 40))
    X = np.c_[t, np.sin(3 * t), t ** 2] @ loadings + rng.normal(scale=0.05, size=(150, 40))
    group = np.where(t < 1 / 3, "start", np.where(t < 2 / 3, "middle", "end"))
    obs = pd.DataFrame({"stage": group, "position": t,
                        "rest_preds": t + rng.normal(scale=0.05, size=150)},
                       index=[f"c{i}" for i in range(150)])
    return AnnData(X=X.astype(np.float32), obs=obs, var=pd.DataFrame(
        index=[f"g{i}" for i in range(40)]))


@pytest.fixture(scope="module")
def traj(path_cells):
    graph = cell_graph(path_cells, GraphConfig(n_pcs=10, n_neighbors=10))
    return trajectory(graph, "stage", root="start", config=GraphConfig(n_dcs=5))


def test_pseudotime_recovers_the_order(path_cells, traj):
    pt = traj.obs["dpt_pseudotime"].to_numpy()
    rho = stats.spearmanr(pt, path_cells.obs["position"]).statistic
    assert rho > 0.9
    info = traj.uns["scdeal_trajectory"]
    assert info["root_group"] == "start"
    assert traj.obs.loc[info["root_cell"], "stage"] == "start"
    assert pt[traj.obs_names.get_loc(info["root_cell"])] == 0


def test_paga_layout_and_embeddings(traj):
    assert traj.uns["paga"]["connectivities"].shape == (3, 3)
    layout = traj.uns["scdeal_trajectory"]["layout"]
    assert layout in ("X_draw_graph_fa", "X_draw_graph_fr")
    assert traj.obsm[layout].shape == (traj.n_obs, 2)
    assert traj.obsm["X_umap"].shape == (traj.n_obs, 2)
    # the path's two ends are not directly connected while neighbours along it are
    conn = traj.uns["paga"]["connectivities"].toarray()
    cats = list(traj.obs["stage"].cat.categories)
    s, m, e = cats.index("start"), cats.index("middle"), cats.index("end")
    assert conn[s, m] > conn[s, e] and conn[m, e] > conn[s, e]


def test_input_matrix_is_never_changed(path_cells):
    before = path_cells.X.copy()
    obs_before = path_cells.obs.copy()
    graph = cell_graph(path_cells, GraphConfig(n_pcs=10, n_neighbors=10))
    out = trajectory(graph, "stage", root="start")
    np.testing.assert_array_equal(path_cells.X, before)
    np.testing.assert_array_equal(graph.X, before)
    np.testing.assert_array_equal(out.X, before)
    pd.testing.assert_frame_equal(path_cells.obs, obs_before)
    assert "dpt_pseudotime" not in graph.obs


def test_choose_root_takes_the_group_extreme_away_from_the_rest():
    dc = np.array([[1, 0.5], [1, -0.9], [1, -0.2], [1, 0.3], [1, 0.8]])
    in_root = np.array([False, True, True, False, False])
    # group median (-0.55) is below the rest (0.5): the group's minimum, cell 1
    assert choose_root(dc, in_root) == 1
    flipped = dc * np.array([1, -1])
    assert choose_root(flipped, in_root) == 1
    with pytest.raises(ScdealError, match="no cells"):
        choose_root(dc, np.zeros(5, bool))


def test_pseudotime_correlations_match_scipy(traj):
    cells = traj.copy()
    obs = cells.obs
    obs.iloc[0, obs.columns.get_loc("dpt_pseudotime")] = np.inf  # a disconnected cell
    table = pseudotime_correlations(cells, ["rest_preds", "missing_column"])
    pd.testing.assert_frame_equal(cells.uns["pseudotime_correlations"], table)
    table = table.set_index("variable")
    assert list(table.index) == ["rest_preds"]
    keep = np.isfinite(obs["dpt_pseudotime"].to_numpy())
    t, v = obs["dpt_pseudotime"].to_numpy()[keep], obs["rest_preds"].to_numpy()[keep]
    assert table.loc["rest_preds", "n_cells"] == keep.sum() == traj.n_obs - 1
    assert table.loc["rest_preds", "pearson_r"] == pytest.approx(stats.pearsonr(t, v)[0])
    assert table.loc["rest_preds", "spearman_rho"] == pytest.approx(stats.spearmanr(t, v)[0])


def test_bad_input(path_cells):
    graph = cell_graph(path_cells, GraphConfig(n_pcs=10, n_neighbors=10))
    with pytest.raises(ScdealError, match="root group 'parental' is not a value of 'stage'"):
        trajectory(graph, "stage", root="parental")
    with pytest.raises(ScdealError, match="no column 'cell_color'"):
        trajectory(graph, "cell_color")
    with pytest.raises(ScdealError, match="needs a neighbour graph"):
        trajectory(path_cells, "stage")
    with pytest.raises(ScdealError, match="representation 'X_nope'"):
        cell_graph(path_cells, GraphConfig(use_rep="X_nope"))


def test_pseudotime_correlations_of_a_table_are_deprecated_and_the_same(traj):
    new = pseudotime_correlations(traj.copy(), ["rest_preds"], key_added="corr")
    with pytest.warns(FutureWarning, match=r"pseudotime_correlations\(obs, keys\).*0.3"):
        old = pseudotime_correlations(traj.obs, ["rest_preds"])
    pd.testing.assert_frame_equal(old, new)


def test_the_settings_keys_follow_key_added(path_cells):
    graph = cell_graph(path_cells, GraphConfig(n_pcs=10, n_neighbors=10), key_added="g")
    out = trajectory(graph, "stage", key_added="t")
    assert "g" in graph.uns and "scdeal_graph" not in graph.uns
    assert out.uns["t"]["groupby"] == "stage" and "scdeal_trajectory" not in out.uns


def test_groups_no_edge_joins_get_paga_connectivity_zero():
    # Two far-apart blobs: the neighbour graph has no edge between the groups, where scanpy's
    # paga fails (scipy refuses its empty inter-group graph); the result is what PAGA means.
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, (60, 20)), rng.normal(40, 1, (60, 20))]).astype(np.float32)
    cells = AnnData(X, obs=pd.DataFrame({"blob": ["a"] * 60 + ["b"] * 60},
                                        index=[f"c{i}" for i in range(120)]))
    graph = cell_graph(cells, GraphConfig(n_pcs=5, n_neighbors=10))
    out = trajectory(graph, "blob", config=GraphConfig(n_dcs=3))
    conn = out.uns["paga"]["connectivities"]
    assert conn.shape == (2, 2) and conn.nnz == 0 and out.uns["paga"]["groups"] == "blob"
    assert out.uns["blob_sizes"].tolist() == [60, 60]
    assert "X_draw_graph_fa" in out.obsm or "X_draw_graph_fr" in out.obsm
