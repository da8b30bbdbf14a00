"""Reading single-cell targets, attaching labels, detecting what X holds."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.io import mmwrite

from scdeal.data.labels import attach_labels, binary_labels, parse_label_map
from scdeal.data.singlecell import read_target
from scdeal.data.values import detect_value_kind, summarize_target
from scdeal.errors import ScdealError

SCAD = "scad/Target_expr_resp_z.{}_tp4k.tsv"

# ----------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def counts():
    """Cells x genes integer counts with symbol gene names and barcode cell names."""
    rng = np.random.default_rng(1)
    X = rng.poisson(0.8, size=(12, 7)).astype(np.float32)
    cells = [f"{''.join(rng.choice(list('ACGT'), 16))}-1" for _ in range(12)]
    genes = ["TP53", "EGFR", "MT-CO1", "GAPDH", "ACTB", "KRAS", "MYC"]
    return X, cells, genes


def _gz_text(path: Path, text: str) -> None:
    with gzip.open(path, "wt") as handle:
        handle.write(text)


def _write_10x(folder: Path, X, cells, genes, *, v3=True, gz=True, prefix="", extra=True):
    """A 10x folder: matrix.mtx (genes x cells), features/genes.tsv, barcodes.tsv."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(f"ENSG{i:011d}", g, "Gene Expression") for i, g in enumerate(genes)]
    M = sp.coo_matrix(X.T)
    if v3 and extra:  # a feature that read_target must leave out (not gene expression)
        rows.append(("CD3_TotalSeqB", "CD3", "Antibody Capture"))
        M = sp.vstack([M, sp.coo_matrix(np.full((1, len(cells)), 7.0))]).tocoo()
    lines = ["\t".join(r if v3 else r[:2]) for r in rows]
    suffix = ".gz" if gz else ""
    feature_name = f"{prefix}{'features' if v3 else 'genes'}.tsv{suffix}"
    mmwrite(folder / f"{prefix}matrix.mtx", M)
    if gz:
        raw = (folder / f"{prefix}matrix.mtx").read_bytes()
        (folder / f"{prefix}matrix.mtx").unlink()
        (folder / f"{prefix}matrix.mtx.gz").write_bytes(gzip.compress(raw))
    for name, text in ((feature_name, "\n".join(lines) + "\n"),
                       (f"{prefix}barcodes.tsv{suffix}", "\n".join(cells) + "\n")):
        if gz:
            _gz_text(folder / name, text)
        else:
            (folder / name).write_text(text)
    return folder


def _write_table(path: Path, X, rows, columns, sep=",", extra=None, index_name="") -> Path:
    frame = pd.DataFrame(X, index=rows, columns=columns)
    if extra:
        for k, v in reversed(extra.items()):
            frame.insert(0, k, v)
    frame.index.name = index_name
    frame.to_csv(path, sep=sep)
    return path


# ----------------------------------------------------------------------------------------
# real files


@pytest.mark.parametrize("drug,n_cells,n_genes,n_sensitive", [
    ("Gefitinib", 66, 2933, 33), ("Afatinib", 120, 2876, 60)])
def test_scad_tsv(shared_dir, drug, n_cells, n_genes, n_sensitive):
    path = shared_dir / SCAD.format(drug)
    adata = read_target(path, label_key="response")
    assert adata.shape == (n_cells, n_genes)  # numbers from shared/README.md
    assert adata.X.dtype == np.float32 and isinstance(adata.X, np.ndarray)
    # Independent read with pandas' defaults.
    ref = pd.read_csv(path, sep="\t", index_col=0)
    assert list(adata.obs_names) == [str(c) for c in ref.index]
    assert list(adata.var_names) == [c for c in ref.columns if c != "response"]
    np.testing.assert_allclose(adata.X, ref.drop(columns="response").to_numpy(), rtol=1e-6)
    assert "response" not in adata.var_names
    attach_labels(adata, "response")
    assert str(adata.obs["sensitive"].dtype) == "Int8"
    assert int(adata.obs["sensitive"].sum()) == n_sensitive
    np.testing.assert_array_equal(adata.obs["sensitive"].to_numpy(int), ref["response"])
    assert detect_value_kind(adata.X) == "scaled"
    summary = summarize_target(adata)
    assert summary["gene_id_type"] == "entrez"
    assert summary["value_kind"] == "scaled"
    assert summary["candidate_label_columns"]["response"] == {
        "0": n_cells - n_sensitive, "1": n_sensitive}


def test_scad_without_label_key_warns(shared_dir, caplog):
    with caplog.at_level(logging.WARNING):
        adata = read_target(shared_dir / SCAD.format("Gefitinib"))
    assert "response" in adata.var_names  # read as asked, but the user is told
    assert "'response' holds only 0/1" in caplog.text


# ----------------------------------------------------------------------------------------
# 10x


def test_10x_v3_folder_gz(tmp_path, counts):
    X, cells, genes = counts
    folder = _write_10x(tmp_path / "filtered_feature_bc_matrix", X, cells, genes)
    adata = read_target(folder)
    assert list(adata.obs_names) == cells
    assert list(adata.var_names) == genes  # antibody feature left out
    assert sp.issparse(adata.X) and adata.X.format == "csr" and adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X.toarray(), X)
    assert adata.var["gene_ids"].iloc[0] == "ENSG00000000000"
    # the matrix file stands for its folder
    np.testing.assert_array_equal(read_target(folder / "matrix.mtx.gz").X.toarray(), X)


def test_10x_v2_folder_plain(tmp_path, counts):
    X, cells, genes = counts
    adata = read_target(_write_10x(tmp_path / "hg19", X, cells, genes, v3=False, gz=False))
    assert list(adata.var_names) == genes
    np.testing.assert_array_equal(adata.X.toarray(), X)


@pytest.mark.parametrize("v3,gz,prefix", [(True, False, ""), (False, True, "GSM42_")])
def test_10x_other_layouts(tmp_path, counts, v3, gz, prefix):
    # STARsolo writes v3 names uncompressed; GEO serves prefixed, gzipped v2 names.
    X, cells, genes = counts
    adata = read_target(_write_10x(tmp_path / "m", X, cells, genes, v3=v3, gz=gz,
                                   prefix=prefix))
    assert list(adata.obs_names) == cells and list(adata.var_names) == genes
    np.testing.assert_array_equal(adata.X.toarray(), X)


def test_10x_folder_without_matrix(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "barcodes.tsv").write_text("AAAC\n")
    with pytest.raises(ScdealError, match="matrix.mtx"):
        read_target(tmp_path / "d")


def test_10x_folder_without_barcodes(tmp_path, counts):
    folder = _write_10x(tmp_path / "m", *counts)
    (folder / "barcodes.tsv.gz").unlink()
    with pytest.raises(ScdealError, match="barcodes.tsv"):
        read_target(folder)


def test_10x_h5(tmp_path, counts):
    X, cells, genes = counts
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    csr = sp.csr_matrix(X.astype(np.int32))  # cells x genes CSR == genes x cells CSC
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(cells, dtype="S")
        m["data"], m["indices"], m["indptr"] = csr.data, csr.indices, csr.indptr
        m["shape"] = np.array([len(genes), len(cells)], dtype=np.int32)
        feat = m.create_group("features")
        feat["id"] = np.array([f"ENSG{i:011d}" for i in range(len(genes))], dtype="S")
        feat["name"] = np.array(genes, dtype="S")
        feat["feature_type"] = np.array(["Gene Expression"] * len(genes), dtype="S")
        feat["genome"] = np.array(["GRCh38"] * len(genes), dtype="S")
    adata = read_target(path)
    assert list(adata.obs_names) == cells and list(adata.var_names) == genes
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X.toarray(), X)


@pytest.mark.parametrize("name", ["x.h5", "x.h5ad"])
def test_not_hdf5(tmp_path, name):
    (tmp_path / name).write_text("cell,TP53\nc1,1\n")
    with pytest.raises(ScdealError, match="not an HDF5 file"):
        read_target(tmp_path / name)


# ----------------------------------------------------------------------------------------
# h5ad


def test_h5ad(tmp_path, counts):
    X, cells, genes = counts
    obs = pd.DataFrame({"cond": ["sensitive", "resistant"] * 6}, index=cells)
    anndata.AnnData(X.astype(np.int64), obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(
        tmp_path / "a.h5ad")
    adata = read_target(tmp_path / "a.h5ad", label_key="cond")
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X, X)
    attach_labels(adata, "cond")
    assert adata.obs["sensitive"].tolist() == [1, 0] * 6
    with pytest.raises(ScdealError, match="no column 'response'.*'cond'"):
        read_target(tmp_path / "a.h5ad", label_key="response")


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
def test_h5ad_nan_and_duplicates(tmp_path, counts):
    X, cells, genes = counts
    bad = X.copy()
    bad[0, 0], bad[3, 2] = np.nan, np.inf
    anndata.AnnData(bad, obs=pd.DataFrame(index=cells),
                    var=pd.DataFrame(index=genes)).write_h5ad(tmp_path / "nan.h5ad")
    with pytest.raises(ScdealError, match="2 expression values are NaN or infinite; fill"):
        read_target(tmp_path / "nan.h5ad")
    dup = anndata.AnnData(X, obs=pd.DataFrame(index=["c1"] * 2 + cells[2:]),
                          var=pd.DataFrame(index=genes))
    dup.write_h5ad(tmp_path / "dup.h5ad")
    with pytest.raises(ScdealError, match="1 duplicated cell ids.*'c1'"):
        read_target(tmp_path / "dup.h5ad")


# ----------------------------------------------------------------------------------------
# text tables


def test_csv_cells_by_genes(tmp_path, counts):
    X, cells, genes = counts
    labels = ["sensitive", "resistant", "sensitive"] * 4
    batch = ["b1", "b2"] * 6
    path = _write_table(tmp_path / "t.csv", X, cells, genes,
                        extra={"batch": batch, "label": labels}, index_name="cell")
    adata = read_target(path, label_key="label", obs_columns=["batch"])
    assert list(adata.obs_names) == cells and list(adata.var_names) == genes
    assert adata.X.dtype == np.float32 and isinstance(adata.X, np.ndarray)
    np.testing.assert_array_equal(adata.X, X)
    assert adata.obs["label"].tolist() == labels and adata.obs["batch"].tolist() == batch


def test_csv_gz_and_r_style_header(tmp_path, counts):
    X, cells, genes = counts
    body = "\n".join(",".join([c, *map(str, row.astype(int))]) for c, row in zip(cells, X, strict=True))
    _gz_text(tmp_path / "r.csv.gz", ",".join(genes) + "\n" + body + "\n")  # header 1 short
    adata = read_target(tmp_path / "r.csv.gz")
    assert list(adata.obs_names) == cells and list(adata.var_names) == genes
    np.testing.assert_array_equal(adata.X, X)


def test_genes_by_cells(tmp_path, counts):
    X, cells, genes = counts
    path = _write_table(tmp_path / "g.tsv", X.T, genes, cells, sep="\t")
    adata = read_target(path, orientation="genes_by_cells")
    assert list(adata.obs_names) == cells and list(adata.var_names) == genes
    np.testing.assert_array_equal(adata.X, X)
    assert adata.X.flags["C_CONTIGUOUS"]


def test_txt_separator_comes_from_the_header(tmp_path, counts):
    import gzip

    X, cells, genes = counts
    # GEO's Drop-seq tables: genes as rows, tab-separated, gzipped, .txt.gz.
    tab = _write_table(tmp_path / "t.txt", X.T, genes, cells, sep="\t")
    zipped = tmp_path / "t.txt.gz"
    zipped.write_bytes(gzip.compress(tab.read_bytes()))
    adata = read_target(zipped, orientation="genes_by_cells")
    assert list(adata.obs_names) == cells and list(adata.var_names) == genes
    np.testing.assert_array_equal(adata.X, X)
    comma = _write_table(tmp_path / "c.txt", X, cells, genes, sep=",")
    np.testing.assert_array_equal(read_target(comma).X, X)


@pytest.mark.parametrize("sep, found", [(" ", "neither tabs nor commas"),
                                        ("\t", "both tabs and commas")])
def test_txt_with_an_unclear_separator_needs_sep(tmp_path, counts, sep, found):
    X, cells, genes = counts
    names = [f"{g},x" for g in genes] if sep == "\t" else genes
    path = _write_table(tmp_path / "t.txt", X, cells, names, sep=sep)
    with pytest.raises(ScdealError, match=f"holds {found}.*pass sep="):
        read_target(path)
    np.testing.assert_array_equal(read_target(path, sep=sep).X, X)


def test_looks_transposed(tmp_path):
    rng = np.random.default_rng(2)
    genes = [f"ENSG{i:011d}" for i in range(60)]
    cells = [f"{''.join(rng.choice(list('ACGT'), 16))}-1" for _ in range(8)]
    path = _write_table(tmp_path / "t.csv", rng.poisson(1, (60, 8)), genes, cells)
    with pytest.raises(ScdealError, match='looks transposed.*orientation="genes_by_cells"'):
        read_target(path)
    assert read_target(path, orientation="genes_by_cells").shape == (8, 60)
    # Entrez ids on 50 rows against 4 plainly named samples: far more rows than columns.
    entrez = _write_table(tmp_path / "e.csv", rng.poisson(1, (50, 4)),
                          [str(1000 + 7 * i) for i in range(50)], ["ctrl", "drugA", "x", "y"])
    with pytest.raises(ScdealError, match="looks transposed"):
        read_target(entrez)


def test_cells_by_genes_with_more_cells_than_genes_is_not_refused(tmp_path):
    rng = np.random.default_rng(3)
    cells = [f"cell_{i}" for i in range(40)]
    genes = ["TP53", "EGFR", "KRAS", "MYC", "ACTB"]
    adata = read_target(_write_table(tmp_path / "t.csv", rng.poisson(1, (40, 5)), cells, genes))
    assert adata.shape == (40, 5)
    # row numbers as cell ids (R's default) are not Entrez ids
    numbered = [str(i + 1) for i in range(40)]
    adata = read_target(_write_table(tmp_path / "n.csv", rng.poisson(1, (40, 5)), numbered,
                                     genes))
    assert list(adata.obs_names) == numbered


def test_genes_by_cells_that_looks_like_cells_by_genes(tmp_path):
    rng = np.random.default_rng(4)
    cells = [f"c{i}" for i in range(30)]
    genes = [str(1000 + 13 * i) for i in range(20)]
    path = _write_table(tmp_path / "t.csv", rng.poisson(1, (30, 20)), cells, genes)
    with pytest.raises(ScdealError, match="looks like a cells-by-genes table"):
        read_target(path, orientation="genes_by_cells")


def test_genes_by_cells_refuses_label_key(tmp_path, counts):
    X, cells, genes = counts
    path = _write_table(tmp_path / "g.csv", X.T, genes, cells)
    with pytest.raises(ScdealError, match="genes-by-cells"):
        read_target(path, orientation="genes_by_cells", label_key="x")


def test_non_numeric_column(tmp_path, counts):
    X, cells, genes = counts
    path = _write_table(tmp_path / "t.csv", X, cells, genes,
                        extra={"donor": ["d1", "d2"] * 6, "TP0": [1.0] * 12})
    with pytest.raises(ScdealError, match=r"column\(s\) 'donor' are not numeric.*obs_columns"):
        read_target(path)
    assert read_target(path, obs_columns=["donor"]).obs["donor"].tolist() == ["d1", "d2"] * 6


def test_nan_in_table(tmp_path, counts):
    X, cells, genes = counts
    bad = X.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ScdealError, match="1 expression values are NaN"):
        read_target(_write_table(tmp_path / "t.csv", bad, cells, genes))


@pytest.mark.filterwarnings("ignore:.* names are not unique")
def test_duplicated_ids(tmp_path, counts, caplog):
    X, cells, genes = counts
    with pytest.raises(ScdealError, match="duplicated cell ids"):
        read_target(_write_table(tmp_path / "c.csv", X, ["same"] * 2 + cells[2:], genes))
    with pytest.raises(ScdealError, match="duplicated cell ids"):  # cells as columns
        read_target(_write_table(tmp_path / "g.csv", X.T, genes, ["s"] * 2 + cells[2:]),
                    orientation="genes_by_cells")
    # a header longer than any read buffer (8,000 cells x 14 characters)
    wide = [f"cell_{i:09d}" for i in range(8000)]
    wide[-1] = wide[0]
    with pytest.raises(ScdealError, match="1 duplicated cell ids.*'cell_000000000'"):
        read_target(_write_table(tmp_path / "w.csv", np.ones((3, 8000)), genes[:3], wide),
                    orientation="genes_by_cells")
    genes_dup = ["TP53", "TP53", *genes[2:]]
    with caplog.at_level(logging.WARNING):
        adata = read_target(_write_table(tmp_path / "d.csv", X, cells, genes_dup))
    assert list(adata.var_names[:2]) == ["TP53", "TP53-1"]
    assert "1 duplicated gene names" in caplog.text


@pytest.mark.parametrize("name,content,message", [
    ("e.csv", b"", "is empty"),
    ("e.tsv", b"\n\n", "is empty"),
    ("b.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary"),
    ("n.csv.gz", b"cell,TP53\nc1,1\n", "gzip"),
    ("h.csv", b"cell,TP53,EGFR\n", "no cells"),
    ("o.csv", b"cell\nc1\nc2\n", "no columns besides the row names"),
])
def test_bad_text_files(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ScdealError, match=message):
        read_target(tmp_path / name)


def test_wrong_separator(tmp_path, counts):
    X, cells, genes = counts
    path = _write_table(tmp_path / "tab.csv", X, cells, genes, sep="\t")
    with pytest.raises(ScdealError, match="check the separator"):
        read_target(path)


def test_missing_label_column_and_other_paths(tmp_path, counts):
    X, cells, genes = counts
    path = _write_table(tmp_path / "t.csv", X, cells, genes)
    with pytest.raises(ScdealError, match="no column 'response'"):
        read_target(path, label_key="response")
    with pytest.raises(ScdealError, match="no such file"):
        read_target(tmp_path / "absent.csv")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(ScdealError, match="unknown file type '.xlsx'"):
        read_target(tmp_path / "x.xlsx")
    folder = _write_10x(tmp_path / "m", X, cells, genes)
    with pytest.raises(ScdealError, match="no per-cell annotations"):
        read_target(folder, label_key="response")


# ----------------------------------------------------------------------------------------
# labels


def _obs(values) -> anndata.AnnData:
    return anndata.AnnData(obs=pd.DataFrame({"y": values},
                                            index=[f"c{i}" for i in range(len(values))]))


@pytest.mark.parametrize("values", [
    [1, 0, 1, 0], [1.0, 0.0, 1.0, 0.0], ["1", "0", "1", "0"],
    ["Sensitive", "resistant", " SENSITIVE ", "Resistant"]])
def test_attach_default_mapping(values):
    adata = attach_labels(_obs(values), "y")
    assert str(adata.obs["sensitive"].dtype) == "Int8"
    assert adata.obs["sensitive"].tolist() == [1, 0, 1, 0]


def test_attach_keeps_missing_missing():
    adata = attach_labels(_obs(["sensitive", None, "resistant", np.nan, ""]), "y")
    assert adata.obs["sensitive"].isna().tolist() == [False, True, False, True, True]
    assert adata.obs["sensitive"].dropna().tolist() == [1, 0]
    numeric = attach_labels(_obs([1.0, np.nan, 0.0]), "y", key_added="lab")
    assert numeric.obs["lab"].isna().tolist() == [False, True, False]


def test_attach_unexpected_values_need_a_mapping():
    values = ["Sensitive", "Holiday", "Resistant", "Holiday"]
    with pytest.raises(ScdealError, match=r"'Holiday' \(2 cells\).*--label-map"):
        attach_labels(_obs(values), "y")
    with pytest.raises(ScdealError, match="not 0/1"):
        attach_labels(_obs([0, 1, 2]), "y")
    adata = attach_labels(_obs(values), "y", {"Sensitive": 1, "Holiday": 1, "Resistant": 0})
    assert adata.obs["sensitive"].tolist() == [1, 1, 0, 1]


def test_attach_explicit_mapping_errors_and_allow_missing():
    values = ["par", "res", "dmso", "par"]
    with pytest.raises(ScdealError, match=r"not covered by the mapping: 'dmso' \(1 cells\)"):
        attach_labels(_obs(values), "y", {"par": 1, "res": 0})
    adata = attach_labels(_obs(values), "y", {"par": 1, "res": 0}, allow_missing=True)
    assert adata.obs["sensitive"].isna().tolist() == [False, False, True, False]
    with pytest.raises(ScdealError, match="use 1 .sensitive. or 0"):
        attach_labels(_obs(values), "y", {"par": 2})
    with pytest.raises(ScdealError, match="no label column 'z'"):
        attach_labels(_obs(values), "z")


def test_attach_string_map_on_numeric_column():
    # --label-map gives string keys; the column holds numbers (inverted coding here).
    adata = attach_labels(_obs([1, 2, 2, 1]), "y", parse_label_map("1=0,2=1"))
    assert adata.obs["sensitive"].tolist() == [0, 1, 1, 0]


def test_parse_label_map():
    assert parse_label_map("sensitive=1, resistant=0") == {"sensitive": 1, "resistant": 0}
    assert parse_label_map("a=b=1") == {"a=b": 1}
    for bad in ("sensitive", "sensitive=2", "=1", "", "a=1,a=0"):
        with pytest.raises(ScdealError):
            parse_label_map(bad)


# ----------------------------------------------------------------------------------------
# value kinds and summaries


def _counts_matrix(seed=0, shape=(200, 300)):
    rng = np.random.default_rng(seed)
    return rng.negative_binomial(2, 0.5, size=shape).astype(np.float32)


def test_detect_value_kind():
    C = _counts_matrix()
    totals = C.sum(axis=1, keepdims=True)
    per10k = C / totals * 1e4
    logged = np.log1p(per10k)
    tpm_subset = (C / totals * 1e6)[:, :150]  # TPM on a gene subset: sums differ, large
    z = (logged - logged.mean(0)) / (logged.std(0) + 1e-6)
    assert detect_value_kind(C) == "counts"
    assert detect_value_kind(sp.csr_matrix(C)) == "counts"
    assert detect_value_kind(C.astype(np.int64)) == "counts"
    assert detect_value_kind(per10k) == "normalized"
    assert detect_value_kind(sp.csr_matrix(tpm_subset)) == "normalized"
    assert detect_value_kind(logged) == "log_normalized"
    assert detect_value_kind(sp.csr_matrix(logged)) == "log_normalized"
    assert detect_value_kind(z) == "scaled"


def test_summarize_target():
    C = _counts_matrix(shape=(20, 10))
    for names, expected in (([str(i + 1) for i in range(10)], "entrez"),
                            ([f"ENSG{i:011d}" for i in range(10)], "ensembl"),
                            ([f"ENSMUSG{i:011d}" for i in range(10)], "mouse_ensembl"),
                            ([f"GENE{i}" for i in range(10)], "symbol")):
        obs = pd.DataFrame({"group": ["a", "b"] * 10, "id": [f"x{i}" for i in range(20)]},
                           index=[f"c{i}" for i in range(20)])
        adata = anndata.AnnData(sp.csr_matrix(C), obs=obs, var=pd.DataFrame(index=names))
        summary = summarize_target(adata)
        assert summary["gene_id_type"] == expected
    assert summary["n_cells"] == 20 and summary["n_genes"] == 10
    assert summary["sparsity"] == pytest.approx((C == 0).mean(), abs=1e-4)
    assert summary["value_kind"] == "counts"
    assert summary["candidate_label_columns"] == {"group": {"a": 10, "b": 10}}
    assert summary["value_range"] == [float(C.min()), float(C.max())]


def test_binary_labels_match_attach_labels_and_leave_obs_alone():
    values = ["Sensitive", "Holiday", None, "Resistant"]
    obs = _obs(values).obs
    mapping = {"Sensitive": 1, "Holiday": 1, "Resistant": 0}
    y = binary_labels(obs, "y", mapping)
    assert list(obs.columns) == ["y"] and y.index.equals(obs.index)
    attached = attach_labels(_obs(values), "y", mapping).obs["sensitive"].astype(float)
    assert y.equals(attached.rename("y"))
    with pytest.raises(ScdealError, match="'Holiday' \\(1 cells\\)"):
        binary_labels(obs, "y")


def test_summary_and_fit_share_one_gene_id_detector():
    from scdeal.data.genes import detect_id_type

    # 60% Entrez ids, 40% symbols: a majority vote said "entrez"; fit(gene_ids="auto") refuses.
    names = [str(i + 1) for i in range(6)] + ["TP53", "EGFR", "MYC", "KRAS"]
    adata = anndata.AnnData(_counts_matrix(shape=(4, 10)), var=pd.DataFrame(index=names))
    with pytest.raises(ScdealError, match="cannot tell the gene id type"):
        detect_id_type(adata.var_names)
    assert summarize_target(adata)["gene_id_type"].startswith(
        "undetermined: cannot tell the gene id type")


@pytest.mark.parametrize("density, sparse", [(0.1, True), (0.9, False)])
def test_text_tables_are_read_in_blocks_sparse_when_mostly_zero(tmp_path, monkeypatch,
                                                                density, sparse):
    import gzip

    import scdeal.data.singlecell as singlecell

    monkeypatch.setattr(singlecell, "TEXT_CHUNK_ROWS", 7)  # several blocks from a small file
    rng = np.random.default_rng(3)
    genes = [f"GENE{i}" for i in range(40)]
    cells = [f"{''.join(rng.choice(list('ACGT'), 12))}-1" for _ in range(9)]
    X = (rng.random((9, 40)) < density) * rng.integers(1, 20, (9, 40))
    table = _write_table(tmp_path / "umi.txt", X.T, genes, cells, sep="\t")
    path = tmp_path / "umi.txt.gz"
    path.write_bytes(gzip.compress(table.read_bytes()))
    adata = read_target(path, orientation="genes_by_cells")
    assert sp.issparse(adata.X) is sparse
    dense = adata.X.toarray() if sparse else adata.X
    np.testing.assert_array_equal(dense, X.astype(np.float32))
    assert list(adata.obs_names) == cells and list(adata.var_names) == genes


def test_text_blocks_numpy_can_not_parse_fall_back_to_pandas(tmp_path, monkeypatch):
    import scdeal.data.singlecell as singlecell

    monkeypatch.setattr(singlecell, "TEXT_CHUNK_ROWS", 3)
    rows = [f'"GENE{i}"\t' + "\t".join(str(i * 10 + j) for j in range(4)) for i in range(7)]
    rows[4] = '"GENE4"\t40\t"41"\t42\t43'  # a quoted value: numpy refuses, pandas reads it
    path = tmp_path / "t.txt"
    path.write_text("\t".join(["gene", "c0", "c1", "c2", "c3"]) + "\n" + "\n".join(rows) + "\n")
    adata = read_target(path, orientation="genes_by_cells")
    assert list(adata.var_names) == [f"GENE{i}" for i in range(7)]
    expected = np.array([[i * 10 + j for j in range(4)] for i in range(7)], dtype=np.float32).T
    np.testing.assert_array_equal(np.asarray(adata.X), expected)
