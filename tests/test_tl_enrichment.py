"""Over-representation p-values against scipy's hypergeometric; GMT and regulon readers on
hand-made and real files; bad input."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from scipy.stats import hypergeom

from scdeal.errors import ScdealError
from scdeal.tl import GeneSets, over_representation, read_gmt, read_regulons
from scdeal.tl.critical_genes import adjust_pvalues


def _sets():
    background = [f"G{i}" for i in range(1, 101)] + ["C1orf112"]
    sets = GeneSets("demo", {
        "A": [f"G{i}" for i in range(1, 21)],            # 20 genes, 8 in the query
        "B": [f"G{i}" for i in range(15, 45)] + ["X1"],  # X1 is outside the background
        "C": [f"G{i}" for i in range(90, 101)] + ["C1orf112"],
        "TINY": ["G1", "G2"],                            # below min_size
        "D": [f"G{i}" for i in range(60, 75)],           # no overlap with the query
    }, {"A": "first"})
    query = [f"G{i}" for i in range(1, 9)] + ["G16", "G17", "G30", "C1orf112", "NOT_IN_BG"]
    return query, sets, background


def test_pvalues_match_scipy_hypergeometric():
    query, sets, background = _sets()
    res = over_representation(query, sets, background, min_size=5).set_index("term")
    N = len(background)
    q = set(query) & set(background)
    k = len(q)
    for term in ("A", "B", "C"):
        members = set(sets.sets[term]) & set(background)
        x = len(members & q)
        assert res.loc[term, "overlap"] == x
        assert res.loc[term, "set_size"] == len(members)
        assert res.loc[term, "pvalue"] == pytest.approx(hypergeom.sf(x - 1, N, len(members), k))
        assert res.loc[term, "expected"] == pytest.approx(len(members) * k / N)
    assert (res["query_size"] == k).all() and (res["background_size"] == N).all()
    # BH over the sets tested (those sharing at least one gene with the query)
    expected_adj = adjust_pvalues(res["pvalue"].to_numpy(), "bh")
    np.testing.assert_allclose(res["pvalue_adj"], expected_adj, rtol=1e-10)
    assert "TINY" not in res.index and "D" not in res.index
    assert res.loc["A", "description"] == "first"
    # the lower-case symbol is matched although the other sets are upper-case
    assert "C1orf112" in res.loc["C", "genes"].split(";")
    assert res.index[0] == "A"  # strongest enrichment first


def test_empty_query_gives_an_empty_table():
    _, sets, background = _sets()
    assert over_representation(["NOPE"], sets, background).empty


def test_gmt_reader_plain_and_gz(tmp_path):
    text = "GO:1\tcell cycle\tMCM7\tRFC5\t\nGO:2\tapoptosis\tBAX\nGO:1\tcell cycle\tMCM2\n"
    plain = tmp_path / "sets.gmt"
    plain.write_text(text)
    packed = tmp_path / "sets.gmt.gz"
    with gzip.open(packed, "wt") as handle:
        handle.write(text)
    for path in (plain, packed):
        gs = read_gmt(path)
        assert gs.name == "sets"
        assert gs.sets == {"GO:1": ["MCM7", "RFC5", "MCM2"], "GO:2": ["BAX"]}
        assert gs.descriptions["GO:1"] == "cell cycle"


def test_real_gene_set_files(shared_dir):
    folder = shared_dir / "genesets"
    hallmark = read_gmt(folder / "h.all.v2024.1.Hs.symbols.gmt")
    assert len(hallmark) == 50 and "TP53" in hallmark.sets["HALLMARK_P53_PATHWAY"]
    go = read_gmt(folder / "GO_CC.orgHsEgDb_3.16.0.propagated.symbols.gmt.gz")
    assert go.descriptions["GO:0005575"] == "cellular_component"
    reactome = read_gmt(folder / "ReactomePathways_2024-09-18.gmt")
    assert reactome.descriptions["2-LTR circle formation"] == "R-HSA-164843"


def test_real_regulon_files(shared_dir):
    folder = shared_dir / "regulons"
    collectri = read_regulons(folder / "collectri_human.decoupler.csv")
    assert "TERT" in collectri.sets["MYC"]
    trrust = read_regulons(folder / "trrust_rawdata.human.tsv")
    assert {"BAX", "CDKN1A"} <= set(trrust.sets["AATF"])
    repressed = read_regulons(folder / "trrust_rawdata.human.tsv", mode="repression")
    assert "BAX" in repressed.sets["AATF"] and "CDKN1A" not in repressed.sets.get("AATF", [])


def test_regulon_tables_by_hand(tmp_path):
    csv = tmp_path / "net.csv"
    csv.write_text("source,target,weight,PMID\nTF1,A,1,1\nTF1,B,-1,2\nTF2,A,1,3\n")
    net = read_regulons(csv)
    assert net.sets == {"TF1": ["A", "B"], "TF2": ["A"]}
    assert read_regulons(csv, mode="activation").sets == {"TF1": ["A"], "TF2": ["A"]}
    tsv = tmp_path / "trrust.tsv"
    tsv.write_text("TF1\tA\tActivation\t1\nTF1\tB\tUnknown\t2\n")
    assert read_regulons(tsv).sets == {"TF1": ["A", "B"]}


def test_bad_files(tmp_path):
    with pytest.raises(ScdealError, match="gene-set file not found"):
        read_gmt(tmp_path / "missing.gmt")
    bad = tmp_path / "bad.gmt"
    bad.write_text("just one field\n")
    with pytest.raises(ScdealError, match="line 1 has 1 tab-separated field"):
        read_gmt(bad)
    one_column = tmp_path / "one.tsv"
    one_column.write_text("TF1\nTF2\n")
    with pytest.raises(ScdealError, match="one column"):
        read_regulons(one_column)
    with pytest.raises(ScdealError, match="regulon file not found"):
        read_regulons(tmp_path / "nope.csv")
