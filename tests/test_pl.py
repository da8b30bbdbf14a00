"""scdeal.pl follows scanpy: AnnData and keys in; ax=, show=, save=; the Axes (single panel) or
the Figure (several) back; one-line errors naming a missing key; the old call forms still work,
with a FutureWarning, and draw the same figure."""

from __future__ import annotations

import sys
import types
import warnings

import anndata
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from scdeal import pl
from scdeal.errors import ScdealError

N = 50


@pytest.fixture(scope="module")
def cells() -> anndata.AnnData:
    """50 cells with what model.predict writes, true labels, groups and a UMAP."""
    rng = np.random.default_rng(0)
    adata = anndata.AnnData(rng.poisson(1, (N, 20)).astype("float32"))
    adata.obs["response"] = pd.Categorical(["sensitive", "resistant"] * (N // 2))
    adata.obs["sens_preds"] = np.clip(rng.normal(0.5, 0.2, N), 0, 1)
    adata.obs["sens_preds_pret"] = rng.random(N)
    adata.obs["rest_preds"] = 1 - adata.obs["sens_preds"]
    adata.obs["sens_label"] = pd.Categorical((adata.obs["sens_preds"] >= 0.5).astype(int))
    adata.obs["group"] = pd.Categorical(["a", "b", "c", "d", "e"] * (N // 5))
    adata.obsm["X_umap"] = rng.normal(size=(N, 2))
    adata.obsm["X_scdeal"] = rng.normal(size=(N, 8))
    adata.uns["scdeal"] = {"label_key": "response"}
    return adata


@pytest.fixture(scope="module")
def scored(cells) -> anndata.AnnData:
    """The keys scdeal.tl.gene_scores writes (made up)."""
    rng = np.random.default_rng(1)
    adata = cells.copy()
    for d in ("sensitive", "resistant"):
        for s in ("pred", "true"):
            adata.obs[f"{d}_score_{s}"] = rng.random(N)
    adata.uns["gene_scores"] = {
        "correlations": pd.DataFrame({"direction": ["sensitive", "resistant"],
                                      "pearson_r": [0.6, 0.4], "p_empirical": [0.01, 0.2],
                                      "n_null": [100, 100], "n_genes_pred": [50, 50],
                                      "n_genes_true": [50, 50]}),
        "null": {"sensitive": rng.normal(0, 0.1, 100), "resistant": rng.normal(0, 0.1, 100)}}
    return adata


@pytest.fixture(scope="module")
def attr(cells) -> anndata.AnnData:
    """An attribution AnnData after scdeal.tl.critical_genes (made up)."""
    rng = np.random.default_rng(2)
    out = anndata.AnnData(rng.normal(size=(N, 6)).astype("float32"), obs=cells.obs.copy(),
                          var=pd.DataFrame(index=[f"G{i}" for i in range(6)]))
    out.layers["ig_sensitive"] = out.X.copy()
    out.uns["critical_genes"] = {"sensitive": pd.DataFrame({"gene": ["G0", "G1"]}),
                                 "resistant": pd.DataFrame({"gene": ["G2"]})}
    return out


@pytest.fixture(scope="module")
def traj(cells) -> anndata.AnnData:
    from scdeal.tl import GraphConfig, cell_graph, trajectory

    graph = cell_graph(cells, GraphConfig(n_pcs=5, n_neighbors=8))
    return trajectory(graph, "group", root="a")


RUNS = pd.DataFrame({"auroc": [0.8, 0.85, 0.9], "f1": [0.6, 0.7, 0.65]})
TERMS = pd.DataFrame({"term": ["APOPTOSIS", "MYC_TARGETS"], "description": ["", ""],
                      "pvalue": [1e-4, 0.02], "pvalue_adj": [2e-4, 0.04], "overlap": [8, 5],
                      "set_size": [160, 200]})
GROUPS = pd.DataFrame({"group": ["0", "0", "1", "1"], "drug": ["A", "B", "A", "B"],
                       "mean_p": [0.9, 0.2, 0.4, 0.3]})

# name -> (call with the fixtures, returns Axes (single panel, takes ax=) or Figure)
PLOTS = {
    "embedding": (lambda f, **kw: pl.embedding(f["cells"], color="sens_preds", **kw), Axes),
    "embedding_scdeal": (lambda f, **kw: pl.embedding(f["cells"], basis="scdeal",
                                                      color="group", **kw), Axes),
    "prediction_panels": (lambda f, **kw: pl.prediction_panels(
        f["cells"], truth_key="response", groupby="group", **kw), Figure),
    "roc_pr_curves": (lambda f, **kw: pl.roc_pr_curves(f["cells"], **kw), Figure),
    "gene_score_regression": (lambda f, **kw: pl.gene_score_regression(f["scored"], **kw),
                              Figure),
    "attribution_heatmap": (lambda f, **kw: pl.attribution_heatmap(
        f["attr"], truth_key="response", **kw), Figure),
    "trajectory_panels": (lambda f, **kw: pl.trajectory_panels(f["traj"], keys=["rest_preds"],
                                                               **kw), Figure),
    "stability_boxplot": (lambda f, **kw: pl.stability_boxplot(RUNS, **kw), Axes),
    "stability_boxplot_adata": (lambda f, **kw: pl.stability_boxplot(
        anndata.AnnData(uns={"scdeal_stability": {"runs": RUNS}}), **kw), Axes),
    "enrichment_barplot": (lambda f, **kw: pl.enrichment_barplot(TERMS, title="t", **kw), Axes),
    "screen_heatmap": (lambda f, **kw: pl.screen_heatmap(GROUPS, **kw), Axes),
}
SINGLE = [name for name, (_, kind) in PLOTS.items() if kind is Axes]


@pytest.fixture
def data(request) -> dict:
    """The fixtures a plot of PLOTS needs, built only when it needs them (traj is slower)."""
    name = request.param if hasattr(request, "param") else None
    needs = {"gene_score_regression": "scored", "attribution_heatmap": "attr",
             "trajectory_panels": "traj"}.get(name)
    out = {"cells": request.getfixturevalue("cells")}
    if needs:
        out[needs] = request.getfixturevalue(needs)
    return out


def drawn(obj) -> list:
    """What a figure shows, to compare two of them: per Axes its texts and its data."""
    fig = obj if isinstance(obj, Figure) else obj.figure
    axes = fig.axes if isinstance(obj, Figure) else [obj]
    out = []
    for ax in axes:
        out.append((ax.get_title(), ax.get_xlabel(), ax.get_ylabel(),
                    [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()],
                    [np.round(np.asarray(c.get_offsets(), float), 6).tolist()
                     for c in ax.collections],
                    [np.round(line.get_xydata(), 6).tolist() for line in ax.lines],
                    [np.round(np.asarray(im.get_array(), float), 6).tolist()
                     for im in ax.images]))
    return out


@pytest.mark.parametrize("data", list(PLOTS), indirect=True)
def test_show_false_returns_the_axes_or_the_figure(data, request):
    name = request.node.callspec.params["data"]
    plot, kind = PLOTS[name]
    out = plot(data, show=False)
    assert isinstance(out, kind), (name, type(out))
    assert plt.get_fignums() == []  # built without pyplot: nothing lingers


@pytest.mark.parametrize("data", SINGLE, indirect=True)
def test_ax_draws_into_the_given_axes(data, request):
    plot, _ = PLOTS[request.node.callspec.params["data"]]
    fig = pl.new_figure(8, 4)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    assert plot(data, ax=right, show=False) is right
    assert len(right.collections) + len(right.patches) + len(right.images) > 0
    assert not (left.collections or left.patches or left.images or left.lines)


@pytest.mark.parametrize("data", list(PLOTS), indirect=True)
def test_save_writes_the_file_its_extension_names(data, request, tmp_path):
    plot, _ = PLOTS[request.node.callspec.params["data"]]
    target = tmp_path / "figures" / "plot.pdf"
    plot(data, show=False, save=target)
    assert target.read_bytes()[:4] == b"%PDF"


def test_save_needs_a_known_extension(cells, tmp_path):
    with pytest.raises(ScdealError, match="extension"):
        pl.embedding(cells, show=False, save=tmp_path / "plot")
    with pytest.raises(ScdealError, match="file path"):
        pl.embedding(cells, show=False, save=True)


def test_show_none_on_a_file_only_backend_returns_the_plot(cells):
    from scdeal.pl._save import FILE_ONLY_BACKENDS

    if matplotlib.get_backend().lower() not in FILE_ONLY_BACKENDS:  # conftest picks Agg
        pytest.skip(f"matplotlib draws on {matplotlib.get_backend()}")
    assert isinstance(pl.embedding(cells), Axes)
    assert plt.get_fignums() == []


def test_show_true_shows_through_pyplot_and_returns_none(cells, monkeypatch):
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.get_fignums()))
    try:
        assert pl.embedding(cells, show=True) is None
        assert pl.prediction_panels(cells, show=True) is None
        assert len(shown) == 2 and all(shown)
    finally:
        plt.close("all")


def test_show_none_follows_scanpy_autoshow(monkeypatch):
    from scdeal.pl._save import resolve_show

    monkeypatch.setattr(matplotlib, "get_backend", lambda: "QtAgg")  # a screen
    fake = types.SimpleNamespace(settings=types.SimpleNamespace(autoshow=False))
    monkeypatch.setitem(sys.modules, "scanpy", fake)
    assert resolve_show(None) is False
    fake.settings.autoshow = True
    assert resolve_show(None) is True
    assert resolve_show(False) is False


@pytest.mark.parametrize("call,message", [
    (lambda c: pl.embedding(c, basis="tsne", show=False), r"adata\.obsm has no 'X_tsne'"),
    (lambda c: pl.embedding(anndata.AnnData(c.X), show=False),
     r"adata\.obsm has no 'X_umap'; run scdeal\.tl\.cell_graph"),
    (lambda c: pl.embedding(c, color="nope", show=False), r"adata\.obs has no 'nope'"),
    (lambda c: pl.prediction_panels(anndata.AnnData(obsm={"X_umap": np.zeros((3, 2))}),
                                    show=False),
     r"adata\.obs has no 'sens_preds'; run model\.predict\(adata\) first"),
    (lambda c: pl.prediction_panels(c, truth_key="nope", show=False), r"no 'nope'"),
    (lambda c: pl.roc_pr_curves(c, truth_key="nope", show=False), r"no 'nope'"),
    (lambda c: pl.gene_score_regression(c, show=False),
     r"adata\.uns has no 'gene_scores'; run scdeal\.tl\.gene_scores\(adata\) first"),
    (lambda c: pl.attribution_heatmap(c, show=False),
     r"adata\.uns has no 'critical_genes'; run scdeal\.tl\.critical_genes\(attr\) first"),
    (lambda c: pl.trajectory_panels(c, show=False),
     r"adata\.uns has no 'scdeal_trajectory'; run scdeal\.tl\.trajectory"),
    (lambda c: pl.stability_boxplot(c, show=False),
     r"adata\.uns has no 'scdeal_stability'; run scdeal\.tl\.stability_test"),
])
def test_a_missing_key_is_named_with_what_makes_it(cells, call, message):
    with pytest.raises(ScdealError, match=message) as err:
        call(cells)
    assert "\n" not in str(err.value)


def test_roc_truth_defaults_to_the_label_key_predict_recorded(cells):
    default = pl.roc_pr_curves(cells, show=False)
    explicit = pl.roc_pr_curves(cells, truth_key="response", show=False)
    assert drawn(default) == drawn(explicit)
    no_record = cells.copy()
    del no_record.uns["scdeal"]
    with pytest.raises(ScdealError, match="truth_key="):
        pl.roc_pr_curves(no_record, show=False)


# The deprecated call forms: each warns and draws what the new form draws.

def _old(call):
    with pytest.warns(FutureWarning, match="deprecated and will be removed in scdeal 0.3; use"):
        return call()


def test_scatter_panel_is_deprecated_for_embedding(cells):
    old_ax, new_ax = pl.new_figure(4, 4).add_subplot(), pl.new_figure(4, 4).add_subplot()
    _old(lambda: pl.scatter_panel(old_ax, cells.obsm["X_umap"], cells.obs["group"], "group"))
    pl.embedding(cells, color="group", ax=new_ax, show=False)
    assert drawn(old_ax) == drawn(new_ax)


def test_prediction_panels_of_arrays_is_deprecated(cells):
    old = _old(lambda: pl.prediction_panels(cells.obsm["X_umap"], cells.obs,
                                            truth_key="response", group_key="group"))
    new = pl.prediction_panels(cells, truth_key="response", groupby="group", show=False)
    assert isinstance(old, Figure) and drawn(old) == drawn(new)


def test_roc_pr_curves_of_arrays_is_deprecated(cells):
    y = (cells.obs["response"] == "sensitive").astype(int)
    old = _old(lambda: pl.roc_pr_curves(y, cells.obs["sens_preds"],
                                        prob_before=cells.obs["sens_preds_pret"]))
    new = pl.roc_pr_curves(cells, truth_key="response", show=False)
    assert drawn(old) == drawn(new)


def test_gene_score_regression_of_tables_is_deprecated(scored):
    info = scored.uns["gene_scores"]
    scores = scored.obs[[c for c in scored.obs if "_score_" in c]]
    old = _old(lambda: pl.gene_score_regression(scores, info["correlations"], info["null"]))
    assert drawn(old) == drawn(pl.gene_score_regression(scored, show=False))


def test_attribution_heatmap_with_gene_lists_is_deprecated(attr):
    old = _old(lambda: pl.attribution_heatmap(attr, ["G0", "G1"], ["G2"]))
    assert drawn(old) == drawn(pl.attribution_heatmap(attr, show=False))


def test_trajectory_panels_with_positional_groupby_is_deprecated(traj):
    old = _old(lambda: pl.trajectory_panels(traj, "group"))
    new = pl.trajectory_panels(traj, groupby="group", show=False)
    assert drawn(old) == drawn(new)


def test_stability_boxplot_with_positional_metrics_is_deprecated():
    old = _old(lambda: pl.stability_boxplot(RUNS, ["f1"]))
    assert drawn(old) == drawn(pl.stability_boxplot(RUNS, metrics=["f1"], show=False))


def test_enrichment_barplot_with_positional_title_is_deprecated():
    old = _old(lambda: pl.enrichment_barplot(TERMS, "hallmark", 1))
    new = pl.enrichment_barplot(TERMS, title="hallmark", n_terms=1, show=False)
    assert drawn(old) == drawn(new)


def test_the_packages_own_figures_use_no_deprecated_form(cells, scored, attr, traj, tmp_path):
    """explain's and report's figure code, on made-up results: no scdeal FutureWarning."""
    from scdeal.workflows.explain import ExplainConfig, _figures
    from scdeal.workflows.report import _prediction_figures

    analysis = traj.copy()
    for column in ("resistant_score_pred", "resistant_score_true"):
        analysis.obs[column] = scored.obs[column].to_numpy()
    analysis.obs["truth"] = (cells.obs["response"] == "sensitive").astype(float).to_numpy()
    run = tmp_path / "run"
    run.mkdir()
    cells.write_h5ad(run / "predictions.h5ad")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = _figures(tmp_path / "figures", cells, attr, types.SimpleNamespace(
            sensitive=[1], resistant=[]), scored, analysis, {"enrichment_sensitive": TERMS},
            "response", ExplainConfig(groupby="group"))
        _prediction_figures(run)
    ours = [w for w in caught if "scdeal 0.3" in str(w.message)]
    assert not ours, [str(w.message) for w in ours]
    assert set(made) == {"umap_predictions", "roc_pr", "gene_scores", "critical_genes_heatmap",
                         "enrichment_sensitive", "trajectory"}
    assert (run / "figures" / "roc_pr.png").stat().st_size > 0


def test_the_screen_heatmap_draws_no_grid_whatever_the_style():
    import matplotlib as mpl
    import pandas as pd

    from scdeal.pl import screen_heatmap

    groups = pd.DataFrame({"group": ["0", "0", "1", "1"], "drug": ["A", "B", "A", "B"],
                           "mean_p": [0.9, 0.2, 0.4, 0.3]})
    with mpl.rc_context({"axes.grid": True}):
        ax = screen_heatmap(groups, show=False)
    assert not any(line.get_visible() for line in ax.get_xgridlines() + ax.get_ygridlines())
