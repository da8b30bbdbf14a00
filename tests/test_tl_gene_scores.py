"""Gene scores from predicted and true groups, the random-gene-set null and its empirical p."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from scdeal.errors import ScdealError
from scdeal.tl import GeneScoreConfig, empirical_pvalue, gene_scores


@pytest.fixture(scope="module")
def synthetic():
    """60 cells x 300 genes; genes S0..S29 up in truly sensitive cells, R0..R29 up in truly
    resistant ones; the 'prediction' equals the truth except for 4 swapped cells."""
    rng = np.random.default_rng(0)
    n, genes = 60, [f"S{i}" for i in range(30)] + [f"R{i}" for i in range(30)] + [
        f"N{i}" for i in range(240)]
    truth = np.r_[np.ones(30, int), np.zeros(30, int)]
    X = rng.normal(size=(n, len(genes)))
    X[truth == 1, :30] += 1.5
    X[truth == 0, 30:60] += 1.5
    predicted = truth.copy()
    predicted[[0, 1, 30, 31]] = 1 - predicted[[0, 1, 30, 31]]
    cells = [f"c{i}" for i in range(n)]
    expr = AnnData(X=X.astype(np.float32), obs=pd.DataFrame(index=cells),
                   var=pd.DataFrame(index=genes))
    return expr, pd.Series(predicted, index=cells), pd.Series(truth, index=cells)


def labelled(synthetic) -> AnnData:
    """A copy of the synthetic cells with the labels in obs, as gene_scores reads them."""
    expr, predicted, truth = synthetic
    out = expr.copy()
    out.obs["sens_label"], out.obs["response"] = predicted, truth.map({1: "sensitive",
                                                                      0: "resistant"})
    return out


@pytest.fixture(scope="module")
def scored(synthetic):
    adata = labelled(synthetic)
    return adata, gene_scores(adata, "sens_label", "response", GeneScoreConfig(n_null=60, seed=1))


@pytest.fixture(scope="module")
def result(scored):
    return scored[1]


def test_the_keys_written_are_the_results(scored):
    adata, res = scored
    for column in res.scores.columns:
        np.testing.assert_array_equal(adata.obs[column], res.scores[column])
    stored = adata.uns["gene_scores"]
    pd.testing.assert_frame_equal(stored["correlations"], res.correlations)
    pd.testing.assert_frame_equal(stored["gene_sets"], res.gene_sets)
    assert stored["params"]["n_null"] == 60 and stored["null"]["sensitive"].size == 60


def test_label_series_form_is_deprecated_and_gives_the_same_result(synthetic):
    expr, predicted, truth = synthetic
    adata = labelled(synthetic)
    config = GeneScoreConfig(n_null=3, seed=1)
    new = gene_scores(adata, "sens_label", "response", config, key_added="gs")
    with pytest.warns(FutureWarning, match=r"gene_scores\(expr, predicted.*deprecated.*0.3"):
        old = gene_scores(expr, predicted, truth, config)
    pd.testing.assert_frame_equal(old.scores, new.scores)
    pd.testing.assert_frame_equal(old.correlations, new.correlations)
    assert expr.obs.columns.empty and not expr.uns  # the old form writes nothing


def test_a_missing_label_key_says_which_and_what_to_run(synthetic):
    expr = synthetic[0]
    with pytest.raises(ScdealError, match=r"no predicted-label column 'sens_label'.*predict"):
        gene_scores(expr)
    with pytest.raises(ScdealError, match=r"no true-label column 'nope'"):
        gene_scores(labelled(synthetic), truth_key="nope")


def test_marker_genes_follow_the_groups(result):
    sets = result.gene_sets
    for source in ("predicted", "truth"):
        for direction, prefix in (("sensitive", "S"), ("resistant", "R")):
            chosen = sets[(sets.source == source) & (sets.direction == direction)]
            assert 20 <= len(chosen) <= 50
            assert (chosen["pvalue_adj"] < 0.05).all()
            # nearly all are the planted genes of that direction
            assert chosen["gene"].str.startswith(prefix).mean() > 0.9


def test_scores_agree_and_the_empirical_p_is_computed(result):
    corr = result.correlations.set_index("direction")
    scores = result.scores
    for direction in ("sensitive", "resistant"):
        row = corr.loc[direction]
        r = np.corrcoef(scores[f"{direction}_score_pred"], scores[f"{direction}_score_true"])[0, 1]
        assert row["pearson_r"] == pytest.approx(r)
        assert r > 0.9
        null = result.null[direction]
        assert null.size == row["n_null"] == 60
        # recomputed from the returned null: (1 + #null >= r) / (1 + n)
        assert row["p_empirical"] == pytest.approx((1 + np.sum(null >= r)) / (1 + null.size))
        assert row["p_empirical"] == pytest.approx(1 / 61)
        assert abs(row["null_mean"]) < 0.5
    # the sensitive score separates the true groups
    truth_sens = scores["sensitive_score_true"]
    assert truth_sens.iloc[:30].mean() > truth_sens.iloc[30:].mean()


def test_the_matrix_is_not_modified(synthetic):
    adata = labelled(synthetic)
    before = adata.X.copy()
    gene_scores(adata, "sens_label", config=GeneScoreConfig(n_null=0))
    np.testing.assert_array_equal(adata.X, before)
    assert "rank_genes_groups" not in adata.uns


def test_without_truth_only_predicted_scores(synthetic):
    adata = labelled(synthetic)
    res = gene_scores(adata, "sens_label", config=GeneScoreConfig(n_null=0))
    assert list(res.scores.columns) == ["sensitive_score_pred", "resistant_score_pred"]
    assert res.correlations.empty and "sensitive_score_true" not in adata.obs


def test_empirical_pvalue_by_hand():
    assert empirical_pvalue(0.5, np.array([0.1, 0.6, 0.5, 0.2])) == pytest.approx(3 / 5)
    assert empirical_pvalue(0.9, np.array([0.1, 0.2])) == pytest.approx(1 / 3)
    assert np.isnan(empirical_pvalue(0.9, np.array([])))


def test_bad_input(synthetic):
    expr, predicted, truth = synthetic
    one_class = labelled(synthetic)
    one_class.obs["sens_label"] = 1
    with pytest.raises(ScdealError, match="at least 2 sensitive and 2 resistant"):
        gene_scores(one_class, "sens_label", "response")
    with pytest.raises(ScdealError, match="n_null"):
        GeneScoreConfig(n_null=-1)


def test_marker_genes_and_critical_genes_run_the_same_wilcoxon_test():
    from scdeal.tl.critical_genes import rank_attributions
    from scdeal.tl.gene_scores import marker_genes

    rng = np.random.default_rng(3)
    X = np.log1p(rng.poisson(1.0, size=(40, 8))).astype(np.float32)  # many ties, as in data
    X[:20, 0] += 3
    X[20:, 1] += 3
    cells, genes = [f"c{i}" for i in range(40)], [f"G{i}" for i in range(8)]
    expr = AnnData(X=X, obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes))
    labels = pd.Series(np.r_[np.ones(20, int), np.zeros(20, int)], index=cells)
    markers = marker_genes(expr, labels, GeneScoreConfig(n_top=8, alpha=1.0))
    scanpy_p = markers[markers["direction"] == "sensitive"].set_index("gene")["pvalue"]
    assert len(scanpy_p) >= 6
    scipy_p = rank_attributions(X, labels.to_numpy() == 1, genes).set_index("gene")["pvalue"]
    np.testing.assert_allclose(scanpy_p.sort_index(), scipy_p[scanpy_p.index].sort_index(),
                               rtol=1e-4)
