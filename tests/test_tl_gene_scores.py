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


@pytest.fixture(scope="module")
def result(synthetic):
    expr, predicted, truth = synthetic
    return gene_scores(expr, predicted, truth, GeneScoreConfig(n_null=60, seed=1))


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


def test_input_is_not_modified(synthetic):
    expr, predicted, truth = synthetic
    before = expr.X.copy()
    gene_scores(expr, predicted, None, GeneScoreConfig(n_null=0))
    np.testing.assert_array_equal(expr.X, before)
    assert expr.obs.columns.empty and "rank_genes_groups" not in expr.uns


def test_without_truth_only_predicted_scores(synthetic):
    expr, predicted, _ = synthetic
    res = gene_scores(expr, predicted, None, GeneScoreConfig(n_null=0))
    assert list(res.scores.columns) == ["sensitive_score_pred", "resistant_score_pred"]
    assert res.correlations.empty


def test_empirical_pvalue_by_hand():
    assert empirical_pvalue(0.5, np.array([0.1, 0.6, 0.5, 0.2])) == pytest.approx(3 / 5)
    assert empirical_pvalue(0.9, np.array([0.1, 0.2])) == pytest.approx(1 / 3)
    assert np.isnan(empirical_pvalue(0.9, np.array([])))


def test_bad_input(synthetic):
    expr, predicted, truth = synthetic
    with pytest.raises(ScdealError, match="at least 2 sensitive and 2 resistant"):
        gene_scores(expr, pd.Series(1, index=predicted.index), truth)
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
