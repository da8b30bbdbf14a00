"""Preprocessing of single-cell targets, checked against direct numpy computations."""

from __future__ import annotations

import logging

import anndata
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

from scdeal.data.preprocess import PreprocessConfig, preprocess_target
from scdeal.data.singlecell import read_target
from scdeal.errors import ScdealError

N_CELLS, N_GENES, N_MITO = 60, 400, 10


def _counts(seed: int = 0, mito_prefix: str = "MT-") -> anndata.AnnData:
    """Counts with known failures: 5 cells with 100 expressed genes, 10 genes in 2 cells,
    5 cells with a large mitochondrial share."""
    rng = np.random.default_rng(seed)
    X = rng.poisson(2.0, size=(N_CELLS, N_GENES)).astype(np.float32)
    X[:5, 100:] = 0  # cells 0-4: at most 100 expressed genes
    X[:, -10:] = 0
    X[10:12, -10:] = 3  # last 10 genes: expressed in 2 cells only
    X[20:25, :N_MITO] = 60  # cells 20-24: mitochondrial share far above 5%
    genes = [f"{mito_prefix}G{i}" for i in range(N_MITO)] + [f"G{i}" for i in range(N_MITO,
                                                                                     N_GENES)]
    return anndata.AnnData(X, obs=pd.DataFrame(index=[f"c{i}" for i in range(N_CELLS)]),
                           var=pd.DataFrame(index=genes))


def _expected(X: np.ndarray, *, min_genes=200, min_cells=3, max_pct_mito=None,
              target_sum=1e4):
    """The paper's pipeline written out in numpy: masks and the final matrix."""
    keep_cells = (X > 0).sum(axis=1) >= min_genes
    X1 = X[keep_cells]
    keep_genes = (X1 > 0).sum(axis=0) >= min_cells
    X2 = X1[:, keep_genes]
    if max_pct_mito is not None:
        mito = np.flatnonzero(keep_genes) < N_MITO
        pct = X2[:, mito].sum(axis=1) / X2.sum(axis=1) * 100
        cell_ids = np.flatnonzero(keep_cells)[pct < max_pct_mito]
        X2 = X2[pct < max_pct_mito]
    else:
        cell_ids = np.flatnonzero(keep_cells)
    totals = X2.sum(axis=1, keepdims=True)
    target = np.median(totals) if target_sum is None else target_sum
    return cell_ids, np.flatnonzero(keep_genes), np.log1p(X2 / totals * target)


def _dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


@pytest.mark.parametrize("sparse", [False, True])
def test_counts_pipeline_matches_numpy(sparse):
    adata = _counts()
    X = adata.X.copy()
    if sparse:
        adata.X = sp.csr_matrix(adata.X)
    out = preprocess_target(adata)
    cells, genes, expected = _expected(X)
    assert len(cells) == N_CELLS - 5 and len(genes) == N_GENES - 10  # the fixture's design
    assert list(out.obs_names) == [f"c{i}" for i in cells]
    assert list(out.var_names) == [adata.var_names[j] for j in genes]
    assert out.X.dtype == np.float32 and sp.issparse(out.X) == sparse
    np.testing.assert_allclose(_dense(out.X), expected, rtol=1e-5, atol=1e-5)
    record = out.uns["scdeal_preprocess"]
    assert record["input_kind"] == "counts" and record["kind_source"] == "detected"
    assert record["steps"] == ["filter_cells(min_genes=200)", "filter_genes(min_cells=3)",
                               "normalize_total(target_sum=10000.0)", "log1p"]
    assert record["shapes"]["filter_cells"] == {
        "n_cells_before": N_CELLS, "n_genes_before": N_GENES,
        "n_cells_after": N_CELLS - 5, "n_genes_after": N_GENES}
    assert record["shapes"]["filter_genes"]["n_genes_after"] == N_GENES - 10
    assert record["config"]["target_sum"] == 1e4 and record["config"]["min_genes"] == 200
    assert (record["n_cells_output"], record["n_genes_output"]) == out.shape
    assert adata.raw is None and out.raw is None and not out.layers


@pytest.mark.parametrize("prefix", ["MT-", "mt-"])
def test_mito_filter(prefix):
    adata = _counts(mito_prefix=prefix)  # prefix match is case-insensitive
    cells, genes, expected = _expected(adata.X.copy(), max_pct_mito=5.0)
    assert not set(range(20, 25)) & set(cells) and len(cells) == N_CELLS - 10
    out = preprocess_target(adata, PreprocessConfig(max_pct_mito=5.0))
    assert list(out.obs_names) == [f"c{i}" for i in cells]
    np.testing.assert_allclose(_dense(out.X), expected, rtol=1e-5, atol=1e-5)
    record = out.uns["scdeal_preprocess"]
    assert any(s.startswith("mito_filter(max_pct_mito=5.0") and "n_mito_genes=10" in s
               for s in record["steps"])
    assert record["shapes"]["mito_filter"]["n_cells_before"] == N_CELLS - 5
    assert record["shapes"]["mito_filter"]["n_cells_after"] == N_CELLS - 10


def test_mito_filter_without_mito_genes_is_recorded(caplog):
    adata = _counts(mito_prefix="X")
    with caplog.at_level(logging.WARNING):
        out = preprocess_target(adata, PreprocessConfig(max_pct_mito=5.0))
    assert out.n_obs == N_CELLS - 5
    assert "filters nothing" in caplog.text
    assert any("max_pct_mito" in s for s in out.uns["scdeal_preprocess"]["skipped"])


def test_mito_filter_removing_everything():
    adata = _counts()
    adata.X[:, :N_MITO] = 500
    with pytest.raises(ScdealError, match="mito_filter.*removed every cell.*max_pct_mito"):
        preprocess_target(adata, PreprocessConfig(max_pct_mito=5.0))


def test_median_target_sum():
    adata = _counts()
    _, _, expected = _expected(adata.X.copy(), target_sum=None)
    out = preprocess_target(adata, PreprocessConfig(target_sum=None))
    np.testing.assert_allclose(_dense(out.X), expected, rtol=1e-5, atol=1e-5)


def test_scaled_input_is_left_alone(target_file):
    adata = read_target(target_file, label_key="response")
    before = adata.X.copy()
    out = preprocess_target(adata, PreprocessConfig(max_pct_mito=5.0, n_top_genes=100))
    assert out.shape == adata.shape
    np.testing.assert_array_equal(out.X, before)
    record = out.uns["scdeal_preprocess"]
    assert record["input_kind"] == "scaled" and record["steps"] == []
    skipped = " ".join(record["skipped"])
    for field in ("min_genes", "min_cells", "max_pct_mito", "n_top_genes"):
        assert field in skipped


def test_scaled_synthetic_unchanged():
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((30, 50)).astype(np.float32)
    out = preprocess_target(anndata.AnnData(Z.copy()))
    np.testing.assert_array_equal(out.X, Z)
    assert out.uns["scdeal_preprocess"]["input_kind"] == "scaled"


def test_copy_leaves_input_untouched_and_in_place_does_not():
    adata = _counts()
    X = adata.X.copy()
    out = preprocess_target(adata)
    assert out is not adata
    assert adata.shape == (N_CELLS, N_GENES) and "scdeal_preprocess" not in adata.uns
    np.testing.assert_array_equal(adata.X, X)
    assert list(adata.obs.columns) == [] and list(adata.var.columns) == []
    same = preprocess_target(adata, copy=False)
    assert same is adata and adata.shape == out.shape
    np.testing.assert_allclose(adata.X, out.X)


def test_log_normalized_only_filters():
    adata = _counts()
    X = adata.X.copy()
    logged = np.log1p(X / X.sum(axis=1, keepdims=True) * 1e4).astype(np.float32)
    out = preprocess_target(anndata.AnnData(logged.copy(), var=adata.var.copy()))
    cells, genes, _ = _expected(X)  # zero pattern unchanged by log1p of scaled counts
    assert out.uns["scdeal_preprocess"]["input_kind"] == "log_normalized"
    np.testing.assert_array_equal(out.X, logged[np.ix_(cells, genes)])
    assert out.uns["scdeal_preprocess"]["steps"] == ["filter_cells(min_genes=200)",
                                                     "filter_genes(min_cells=3)"]


@pytest.mark.parametrize("renormalize", [True, False])
def test_normalized_input(renormalize):
    adata = _counts()
    X = adata.X.copy()
    tpm = (X / X.sum(axis=1, keepdims=True) * 1e6).astype(np.float32)
    tpm[:, 100:110] *= 3  # TPM values not summing to a constant: not counts, not log
    out = preprocess_target(anndata.AnnData(tpm.copy(), var=adata.var.copy()),
                            PreprocessConfig(renormalize=renormalize))
    assert out.uns["scdeal_preprocess"]["input_kind"] == "normalized"
    cells, genes, _ = _expected(X)
    kept = tpm[np.ix_(cells, genes)]
    if renormalize:
        expected = np.log1p(kept / kept.sum(axis=1, keepdims=True) * 1e4)
    else:
        expected = np.log1p(kept)
    np.testing.assert_allclose(out.X, expected, rtol=1e-5, atol=1e-5)


def test_highly_variable_genes():
    adata = _counts()
    _, genes, logged = _expected(adata.X.copy())
    out = preprocess_target(adata, PreprocessConfig(n_top_genes=50))
    assert out.n_vars == 50
    # The same ranking computed independently on the numpy log matrix.
    ref = anndata.AnnData(logged.astype(np.float32), var=pd.DataFrame(
        index=adata.var_names[genes]))
    table = sc.pp.highly_variable_genes(ref, n_top_genes=50, flavor="seurat", inplace=False)
    assert list(out.var_names) == list(ref.var_names[table["highly_variable"].to_numpy()])
    assert out.uns["scdeal_preprocess"]["steps"][-1] == (
        "highly_variable_genes(flavor='seurat', n_top_genes=50)")
    assert "highly_variable" not in out.var  # nothing extra stored
    many = preprocess_target(adata, PreprocessConfig(n_top_genes=10_000))
    assert many.n_vars == N_GENES - 10
    assert any("n_top_genes" in s for s in many.uns["scdeal_preprocess"]["skipped"])


def test_filters_removing_everything():
    with pytest.raises(ScdealError, match=r"filter_cells\(min_genes=1000\) removed every cell"
                                          r".*lower min_genes"):
        preprocess_target(_counts(), PreprocessConfig(min_genes=1000))
    with pytest.raises(ScdealError, match="removed every gene.*lower min_cells"):
        preprocess_target(_counts(), PreprocessConfig(min_cells=N_CELLS + 1))


def test_declared_kind_and_bad_config():
    rng = np.random.default_rng(6)
    Z = anndata.AnnData(rng.standard_normal((10, 20)).astype(np.float32))
    with pytest.raises(ScdealError, match="input_kind='counts' but X has negative values"):
        preprocess_target(Z, PreprocessConfig(input_kind="counts"))
    out = preprocess_target(_counts(), PreprocessConfig(input_kind="counts"))
    assert out.uns["scdeal_preprocess"]["kind_source"] == "declared"
    for bad in ({"input_kind": "tpm"}, {"min_genes": -1}, {"min_cells": 2.5},
                {"max_pct_mito": 0}, {"target_sum": -5}, {"n_top_genes": 0},
                {"mito_prefix": ""}):
        with pytest.raises(ScdealError, match=next(iter(bad))):
            PreprocessConfig(**bad)


@pytest.mark.parametrize("sparse", [False, True])
def test_nan_is_refused(sparse):
    adata = _counts()
    adata.X[3, 7] = np.nan
    adata.X[4, 8] = np.inf
    if sparse:
        adata.X = sp.csr_matrix(adata.X)
    with pytest.raises(ScdealError, match="2 NaN or infinite"):
        preprocess_target(adata)


def test_record_survives_h5ad(tmp_path):
    out = preprocess_target(_counts(), PreprocessConfig(max_pct_mito=5.0, n_top_genes=40))
    out.write_h5ad(tmp_path / "p.h5ad")
    back = anndata.read_h5ad(tmp_path / "p.h5ad").uns["scdeal_preprocess"]
    assert list(back["steps"]) == out.uns["scdeal_preprocess"]["steps"]
    assert back["config"]["max_pct_mito"] == 5.0 and back["config"]["n_top_genes"] == 40


def _droplet_counts(n_cells: int = 400, seed: int = 0) -> anndata.AnnData:
    """Simulated droplet UMIs: gamma-Poisson genes, library sizes of a few thousand, ~90%
    zeros; gene names as in GEO tables, where an old and a new symbol of one gene both occur."""
    rng = np.random.default_rng(seed)
    renamed = ["MARCH1", "MARCHF1", "SEPT7", "SEPTIN7"]
    genes = renamed + ["TP53", "EGFR", "GAPDH", "ACTB", "MYC", "KRAS"] + [
        f"NOTAGENE{i}" for i in range(9990)]
    share = rng.lognormal(0, 2.0, len(genes))
    share /= share.sum()
    library = rng.lognormal(np.log(3000), 0.5, n_cells)
    mean = library[:, None] * share[None, :]
    X = rng.poisson(rng.gamma(2.0, mean / 2.0)).astype(np.float32)
    return anndata.AnnData(sp.csr_matrix(X), var=pd.DataFrame(index=genes))


def test_droplet_counts_stay_counts_when_gene_names_are_merged():
    from scdeal.model.prepare import target_on_symbols

    cells = _droplet_counts()
    zeros = 1 - cells.X.nnz / np.prod(cells.shape)
    assert 0.8 < zeros < 0.97  # droplet-like sparsity
    merged = target_on_symbols(cells, "symbol")
    raw = cells.to_df()
    np.testing.assert_array_equal(merged.to_df()["MARCHF1"], raw["MARCH1"] + raw["MARCHF1"])
    prepared = preprocess_target(merged, PreprocessConfig(min_genes=0, min_cells=0,
                                                          n_top_genes=None))
    assert prepared.uns["scdeal_preprocess"]["input_kind"] == "counts"
    assert "normalize_total(target_sum=10000.0)" in prepared.uns["scdeal_preprocess"]["steps"]


def test_scaled_tables_stay_scaled_when_gene_names_are_merged(target_cells):
    from scdeal.model.prepare import target_on_symbols

    merged = target_on_symbols(target_cells, "entrez")
    prepared = preprocess_target(merged, PreprocessConfig())
    assert prepared.uns["scdeal_preprocess"]["input_kind"] == "scaled"
