"""Critical genes: the rank-sum statistics against a direct per-gene computation, the
corrections, the sensitive/resistant split, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import stats

from scdeal.errors import ScdealError
from scdeal.tl import CriticalGeneConfig, adjust_pvalues, critical_genes, rank_attributions


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    n_s, n_r, n_genes = 14, 11, 7
    A = rng.normal(size=(n_s + n_r, n_genes))
    A[:n_s, 0] += 2.0          # clearly higher in the group
    A[:n_s, 1] += 0.7          # mildly higher
    A[:n_s, 2] -= 1.5          # lower in the group
    A[:, 3] = np.round(A[:, 3])  # ties
    group = np.r_[np.ones(n_s, bool), np.zeros(n_r, bool)]
    return A, group, [f"G{i}" for i in range(n_genes)]


def test_rank_sum_statistics_match_a_direct_computation(small):
    A, group, genes = small
    table = rank_attributions(A, group, genes).set_index("gene")
    n1, n0 = group.sum(), (~group).sum()
    raw_p = []
    for j, gene in enumerate(genes):
        a, b = A[group, j], A[~group, j]
        # U of the group from the ranks of the pooled sample (average ranks for ties)
        ranks = stats.rankdata(np.r_[a, b])
        u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
        expected = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic",
                                      use_continuity=False)
        assert table.loc[gene, "statistic_u"] == pytest.approx(u)
        assert table.loc[gene, "pvalue"] == pytest.approx(expected.pvalue, rel=1e-10)
        pooled = np.sqrt(((n1 - 1) * a.var(ddof=1) + (n0 - 1) * b.var(ddof=1)) / (n1 + n0 - 2))
        assert table.loc[gene, "cohens_d"] == pytest.approx((a.mean() - b.mean()) / pooled)
        assert table.loc[gene, "rank_biserial"] == pytest.approx(2 * u / (n1 * n0) - 1)
        assert table.loc[gene, "mean_diff"] == pytest.approx(a.mean() - b.mean())
        raw_p.append(expected.pvalue)
    bonferroni = np.minimum(np.array(raw_p) * len(genes), 1)
    np.testing.assert_allclose(table.loc[genes, "pvalue_adj"], bonferroni, rtol=1e-10)
    # sorted by adjusted p; both shifted genes are far ahead of the unshifted ones
    assert table["pvalue_adj"].is_monotonic_increasing
    assert set(table.index[:2]) == {"G0", "G2"}


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted: 0.01, 0.03, 0.04, 0.20 -> p*m/rank = 0.04, 0.06, 0.0533, 0.20 -> step-up minima
    expected = np.array([0.04, 0.0533333, 0.0533333, 0.20])
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), expected, rtol=1e-5)
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni"), [0.04, 0.16, 0.12, 0.8])
    with pytest.raises(ScdealError, match="correction"):
        adjust_pvalues(p, "holm")


def _attr_data(rng, n_s=30, n_r=30):
    """Hand-built attributions with a known answer.

    SENS: input higher in S and attribution higher in S -> sensitive critical gene.
    RES: input higher in R; attribution to P(sensitive) lower in R (its expression pushes R
    cells to resistant) -> resistant critical gene.
    OPP: attribution higher in R than S (opposes the call) -> neither list.
    NOISE: no difference -> neither list.
    CONST: same input in every cell (attribution varies through the gradient) -> not tested.
    """
    n = n_s + n_r
    sens = np.r_[np.ones(n_s, bool), np.zeros(n_r, bool)]
    genes = ["SENS", "RES", "OPP", "NOISE", "CONST"]
    X = rng.normal(size=(n, 5))
    X[:, 4] = 0.3
    X[sens, 0] += 2
    X[~sens, 1] += 2
    A = rng.normal(scale=0.1, size=(n, 5))
    A[sens, 4] += 1.0  # a constant input with a varying gradient: not testable
    A[sens, 0] += 1.0
    A[~sens, 1] -= 1.0
    A[~sens, 2] += 1.0
    obs = pd.DataFrame({"sens_label": pd.Categorical(sens.astype(int), categories=[0, 1])},
                       index=[f"c{i}" for i in range(n)])
    ad = AnnData(X=A.astype(np.float32), obs=obs, var=pd.DataFrame(index=genes))
    ad.layers["ig_sensitive"] = A.astype(np.float32)
    ad.layers["ig_resistant"] = -A.astype(np.float32)
    ad.layers["input"] = X.astype(np.float32)
    return ad


def test_sensitive_and_resistant_split():
    ad = _attr_data(np.random.default_rng(1))
    cg = critical_genes(ad)
    assert list(cg.sensitive["gene"]) == ["SENS"]
    assert list(cg.resistant["gene"]) == ["RES"]
    tests = cg.tests.set_index("gene")
    assert tests.loc["OPP", "cohens_d"] < -0.8 and tests.loc["OPP", "pvalue_adj"] < 0.05
    assert tests.loc["RES", "input_diff"] < 0 < tests.loc["SENS", "input_diff"]
    # both outputs' means are reported; the resistant one mirrors the sensitive one here
    assert tests.loc["RES", "mean_attr_resistant_R"] == pytest.approx(
        -tests.loc["RES", "mean_attr_sensitive_R"])
    assert "CONST" not in set(tests.index)
    assert cg.summary()["n_sensitive"] == 1 and cg.summary()["n_genes_tested"] == 4
    assert cg.summary()["n_genes_constant"] == 1


def test_thresholds_are_applied():
    ad = _attr_data(np.random.default_rng(2))
    strict = critical_genes(ad, CriticalGeneConfig(min_effect=100))
    assert strict.sensitive.empty and strict.resistant.empty
    # Bonferroni over 4 genes: a cut just above the SENS gene's raw p but below 4x it drops it
    tests = critical_genes(ad).tests.set_index("gene")
    raw = tests.loc["SENS", "pvalue"]
    cut = CriticalGeneConfig(alpha=raw * 2)
    assert "SENS" not in set(critical_genes(ad, cut).sensitive["gene"])
    assert "SENS" in set(critical_genes(ad, CriticalGeneConfig(alpha=raw * 5)).sensitive["gene"])


def test_bad_input():
    ad = _attr_data(np.random.default_rng(3))
    one_class = ad.copy()
    one_class.obs["sens_label"] = pd.Categorical(np.ones(ad.n_obs, int), categories=[0, 1])
    with pytest.raises(ScdealError, match="at least 2 cells in each predicted group"):
        critical_genes(one_class)
    no_input = ad.copy()
    del no_input.layers["input"]
    with pytest.raises(ScdealError, match="no layer 'input'"):
        critical_genes(no_input)
    with pytest.raises(ScdealError, match="no predicted-label column 'nope'"):
        critical_genes(ad, label_key="nope")
    with pytest.raises(ScdealError, match="alpha"):
        CriticalGeneConfig(alpha=0)


def test_results_are_written_under_key_added_and_survive_h5ad(tmp_path):
    import anndata

    ad = _attr_data(np.random.default_rng(1))
    cg = critical_genes(ad, key_added="cg")
    stored = ad.uns["cg"]
    assert set(stored) == {"sensitive", "resistant", "tests", "params"}
    pd.testing.assert_frame_equal(stored["tests"], cg.tests)
    assert stored["params"] == cg.summary() and "critical_genes" not in ad.uns
    ad.write_h5ad(tmp_path / "attr.h5ad")
    back = anndata.read_h5ad(tmp_path / "attr.h5ad")
    assert list(back.uns["cg"]["sensitive"]["gene"]) == ["SENS"]
