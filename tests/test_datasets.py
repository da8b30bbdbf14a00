"""The paper's six single-cell datasets: registry, label rules, loaders, acquisition, CLI.

The expression matrices are not available here, so each loader runs on small files written in
the documented GEO layout (method notes section 2) using real cell ids from the released
per-cell labels in ``../shared/data/scdeal/cell_labels``; the loaded labels are compared with
those files. GSE112274 and GSE149383 labels follow from the cell ids alone, so the rule is
checked on every real id.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scdeal.cli import main
from scdeal.datasets import (
    PaperPreset,
    fetch_dataset,
    get_dataset,
    list_datasets,
    load_dataset,
    rules,
    write_dataset,
)
from scdeal.errors import ScdealError

GENES = ["TP53", "EGFR", "MYC", "GAPDH", "KRT5"]


def real_labels(shared_dir: Path, name: str) -> pd.Series:
    table = pd.read_csv(shared_dir / "scdeal" / "cell_labels" / f"{name}_labels.csv", index_col=0)
    return table["response"]


def pick(labels: pd.Series, n_each: int) -> pd.Series:
    """A few real cells of each class, in the file's order."""
    return pd.concat([labels[labels == 1].iloc[:n_each], labels[labels == 0].iloc[:n_each]])


def expression(cells, genes=GENES, seed=0) -> pd.DataFrame:
    """Cells x genes of distinct non-negative values with zeros (so layout errors show)."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 50, size=(len(cells), len(genes))).astype(float)
    values[rng.random(values.shape) < 0.4] = 0.0
    return pd.DataFrame(values, index=list(cells), columns=list(genes))


def write_genes_by_cells(frame: pd.DataFrame, path: Path, sep: str) -> None:
    frame.T.to_csv(path, sep=sep)


# ------------------------------------------------------------------------------------------
# Registry


def test_registry_lists_the_six_paper_datasets():
    table = list_datasets()
    assert table["key"].tolist() == ["GSE117872_HN120", "GSE117872_HN137", "GSE112274",
                                     "GSE140440", "GSE149383", "GSE110894"]
    drugs = dict(zip(table["key"], table["drug"], strict=True))
    assert drugs == {"GSE117872_HN120": "Cisplatin", "GSE117872_HN137": "Cisplatin",
                     "GSE112274": "Gefitinib", "GSE140440": "Docetaxel",
                     "GSE149383": "Erlotinib", "GSE110894": "I-BET-762"}
    # Paper Table 1 cell counts.
    cells = dict(zip(table["key"], table["n_cells_paper"], strict=True))
    assert cells == {"GSE117872_HN120": 548, "GSE117872_HN137": 568, "GSE112274": 507,
                     "GSE140440": 324, "GSE149383": 1496, "GSE110894": 1419}
    assert get_dataset("GSE110894").gene_id_type == "mouse_ensembl"
    assert get_dataset("GSE110894").species == "mouse"
    assert get_dataset("GSE117872_HN120").accession == get_dataset("GSE117872_HN137").accession


def test_presets_are_the_readme_suggested_parameters():
    # Method notes section 10.1 (README "Suggested parameters").
    expected = {
        "GSE110894": PaperPreset(512, (256, 128), (128, 64), "dae", 0.1, "upsampling"),
        "GSE112274": PaperPreset(256, (512, 256), (256, 128), "dae", 0.1, "none"),
        "GSE117872_HN120": PaperPreset(512, (256, 128), (128, 64), "dae", 0.3, "smote"),
        "GSE117872_HN137": PaperPreset(32, (512, 256), (256, 128), "dae", 0.3, "upsampling"),
        "GSE140440": PaperPreset(512, (256, 128), (256, 128), "dae", 0.1, "upsampling"),
        "GSE149383": PaperPreset(64, (512, 256), (256, 128), "dae", 0.3, "upsampling"),
    }
    for key, preset in expected.items():
        assert get_dataset(key).preset == preset, key


def test_get_dataset_accepts_subset_and_rejects_bad_keys():
    assert get_dataset("gse117872", subset="hn137").key == "GSE117872_HN137"
    assert get_dataset("gse112274").key == "GSE112274"
    assert get_dataset("GSE117872_HN120", subset="HN120").key == "GSE117872_HN120"
    with pytest.raises(ScdealError, match="unknown paper dataset 'GSE112274_HN120'"):
        get_dataset("GSE112274", subset="HN120")
    with pytest.raises(ScdealError, match="HN120, HN137"):
        get_dataset("GSE117872")
    with pytest.raises(ScdealError, match="unknown paper dataset 'GSE1'"):
        get_dataset("GSE1")


# ------------------------------------------------------------------------------------------
# Exact reproduction of the released labels from the cell ids


def test_gse112274_rule_reproduces_released_labels(shared_dir):
    labels = real_labels(shared_dir, "GSE112274")
    assert len(labels) == 507
    derived = rules.gse112274_labels(labels.index)
    np.testing.assert_array_equal(derived, labels.to_numpy())
    assert (derived == 1).sum() == 37 and (derived == 0).sum() == 470


def test_gse149383_rule_reproduces_released_labels(shared_dir):
    labels = real_labels(shared_dir, "GSE149383")
    derived = rules.gse149383_labels(labels.index)
    np.testing.assert_array_equal(derived, labels.to_numpy())
    assert (derived == 1).sum() == 1201 and (derived == 0).sum() == 1529


def test_rules_follow_the_documented_substrings():
    np.testing.assert_array_equal(
        rules.gse117872_labels(["Sensitive", "Holiday", "Resistant"]), [1, 1, 0])
    np.testing.assert_array_equal(
        rules.gse110894_labels(["MA9 IBET RESISTANT CELLS",
                                "MA9 IBET RESISTANT CELLS- WITHDRAWAL", "IBET 400NMOL",
                                "DMSO", "EMPTY"]), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(rules.gse140440_labels(["DU145_Res", "PC3_Parental",
                                                          "resistant"]), [0, 1, 1])
    with pytest.raises(ScdealError, match="fewer than 2"):
        rules.gse112274_labels(["PC9"])
    with pytest.raises(ScdealError, match="no 'cluster' value"):
        rules.gse117872_labels(["Sensitive", None])


# ------------------------------------------------------------------------------------------
# GSE117872 (HN120 / HN137)

INFO_COLUMNS = ["cell_color", "patient_id", "origin", "drug_status", "cluster",
                "pca_clusters", "pagoda_clusters"]


def write_gse117872(folder: Path, shared_dir: Path, *, drop_info_for: int = 0) -> dict:
    hn120 = pick(real_labels(shared_dir, "GSE117872_HN120"), 3)
    hn137 = pick(real_labels(shared_dir, "GSE117872_HN137"), 2)
    cells = list(hn120.index) + list(hn137.index)
    matrix = expression(cells)
    # Matrix: genes x cells, tab-separated, header without a corner cell (R write.table).
    lines = ["\t".join(cells)] + [
        "\t".join([gene, *map(str, matrix[gene].to_numpy())]) for gene in GENES]
    (folder / "GSE117872_good_Data_TPM.txt").write_text("\n".join(lines) + "\n")
    rows = []
    # Sensitive cells alternate Sensitive / Holiday; both are sensitive in the original.
    holiday = {}
    for i, (cell, label) in enumerate(pd.concat([hn120, hn137]).items()):
        origin = "HN120" if cell in hn120.index else "HN137"
        cluster = "Resistant" if label == 0 else ("Holiday" if i % 2 else "Sensitive")
        holiday[cell] = cluster == "Holiday"
        rows.append([cell, f"{origin}P", origin[2:], origin, "Treated", cluster, "1", "2", ""])
    rows = rows[::-1][drop_info_for:]  # other order than the matrix: the join is by id
    # A cell of another line that the matrix does not have.
    rows.append(["RHH9999", "HN148P", "148", "HN148", "Treated", "Sensitive", "1", "2", ""])
    text = "\t".join(["groups", *INFO_COLUMNS, ""]) + "\n"
    text += "".join("\t".join(row) + "\n" for row in rows)
    (folder / "GSE117872_good_Data_cellinfo.txt").write_text(text)
    return {"hn120": hn120, "hn137": hn137, "matrix": matrix, "holiday": holiday}


@pytest.mark.parametrize("subset", ["HN120", "HN137"])
def test_gse117872_loader_matches_released_labels(tmp_path, shared_dir, subset):
    made = write_gse117872(tmp_path, shared_dir)
    expected = made[subset.lower()]
    adata = load_dataset(f"GSE117872_{subset}", tmp_path)
    assert list(adata.obs_names) == list(expected.index)
    truth = real_labels(shared_dir, f"GSE117872_{subset}").loc[adata.obs_names]
    np.testing.assert_array_equal(adata.obs["sensitive"].to_numpy(), truth.to_numpy())
    assert (adata.obs["origin"] == subset).all()
    np.testing.assert_array_equal(adata.obs["holiday"].to_numpy(),
                                  [made["holiday"][c] for c in adata.obs_names])
    dense = adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X
    np.testing.assert_allclose(dense, made["matrix"].loc[adata.obs_names, GENES].to_numpy())
    assert list(adata.var_names) == GENES
    assert not any(c.startswith("Unnamed") for c in adata.obs.columns)
    info = adata.uns["scdeal_dataset"]
    assert info["key"] == f"GSE117872_{subset}" and info["drug"] == "Cisplatin"
    assert info["n_holiday"] == sum(made["holiday"][c] for c in expected.index)


def test_gse117872_holiday_cells_dropped_on_request(tmp_path, shared_dir):
    made = write_gse117872(tmp_path, shared_dir)
    kept = load_dataset("GSE117872_HN120", tmp_path)
    dropped = load_dataset("GSE117872_HN120", tmp_path, exclude_holiday=True)
    n_holiday = sum(made["holiday"][c] for c in made["hn120"].index)
    assert n_holiday > 0
    assert dropped.n_obs == kept.n_obs - n_holiday
    assert not dropped.obs["holiday"].any()
    assert dropped.uns["scdeal_dataset"]["n_dropped"] == n_holiday


def test_metadata_ids_not_matching_matrix_ids_is_an_error_with_counts(tmp_path, shared_dir):
    write_gse117872(tmp_path, shared_dir, drop_info_for=3)  # 3 of 10 matrix cells lack info
    with pytest.raises(ScdealError, match=r"cell ids of 7 of 10 matrix cells found"):
        load_dataset("GSE117872_HN120", tmp_path)


# ------------------------------------------------------------------------------------------
# GSE112274


def test_gse112274_loader_matches_released_labels(tmp_path, shared_dir):
    chosen = pick(real_labels(shared_dir, "GSE112274"), 3)
    matrix = expression(chosen.index)
    write_genes_by_cells(matrix, tmp_path / "GSE112274_cell_gene_FPKM.csv", ",")
    adata = load_dataset("GSE112274", tmp_path)
    np.testing.assert_array_equal(adata.obs["sensitive"].to_numpy(),
                                  chosen.loc[adata.obs_names].to_numpy())
    assert set(adata.obs["name_section_1"]) == {"PC9"}
    assert adata.uns["scdeal_dataset"]["values"] == "FPKM"


def test_gse112274_cells_by_genes_and_gzip_are_read_too(tmp_path, shared_dir):
    chosen = pick(real_labels(shared_dir, "GSE112274"), 2)
    matrix = expression(chosen.index)
    matrix.to_csv(tmp_path / "GSE112274_cell_gene_FPKM.csv.gz")  # cells as rows, gzipped
    adata = load_dataset("GSE112274", tmp_path)
    assert list(adata.obs_names) == list(chosen.index)
    np.testing.assert_array_equal(adata.obs["sensitive"].to_numpy(), chosen.to_numpy())


# ------------------------------------------------------------------------------------------
# GSE140440


def write_gse140440(folder: Path, shared_dir: Path) -> pd.Series:
    chosen = pick(real_labels(shared_dir, "GSE140440"), 3)
    write_genes_by_cells(expression(chosen.index), folder / "GSE140440.csv", ",")
    names = {1: "PC3_Parental", 0: "PC3_DocRes"}
    rows = [f"{cell}\t{names[label]}" for cell, label in chosen.items()][::-1]
    (folder / "Annotation.txt").write_text("\n".join(rows) + "\n")
    return chosen


def test_gse140440_loader_joins_annotation_on_ids(tmp_path, shared_dir):
    chosen = write_gse140440(tmp_path, shared_dir)
    adata = load_dataset("GSE140440", tmp_path)
    assert list(adata.obs_names) == list(chosen.index)
    truth = real_labels(shared_dir, "GSE140440").loc[adata.obs_names]
    np.testing.assert_array_equal(adata.obs["sensitive"].to_numpy(), truth.to_numpy())
    assert set(adata.obs.loc[adata.obs["sensitive"] == 0, "annotation"]) == {"PC3_DocRes"}


def test_gse140440_by_position_needs_one_row_per_cell(tmp_path, shared_dir):
    chosen = write_gse140440(tmp_path, shared_dir)
    labels = ["PC3_Parental" if v == 1 else "PC3_DocRes" for v in chosen]
    # A file without ids: only the label, in matrix order.
    (tmp_path / "Annotation.txt").write_text("\n".join(labels) + "\n")
    with pytest.raises(ScdealError, match="one column"):
        load_dataset("GSE140440", tmp_path)
    adata = load_dataset("GSE140440", tmp_path, by_position=True)
    np.testing.assert_array_equal(adata.obs["sensitive"].to_numpy(), chosen.to_numpy())
    (tmp_path / "Annotation.txt").write_text("\n".join(labels[:-1]) + "\n")
    with pytest.raises(ScdealError, match="has 5 rows but the matrix has 6 cells"):
        load_dataset("GSE140440", tmp_path, by_position=True)


def test_gse140440_annotation_with_other_ids_is_an_error(tmp_path, shared_dir):
    chosen = write_gse140440(tmp_path, shared_dir)
    rows = [f"cell{i}\tPC3_Parental" for i in range(len(chosen))]
    (tmp_path / "Annotation.txt").write_text("\n".join(rows) + "\n")
    with pytest.raises(ScdealError, match=r"cell ids of 0 of 6 matrix cells found"):
        load_dataset("GSE140440", tmp_path)


# ------------------------------------------------------------------------------------------
# GSE149383


def write_gse149383(folder: Path, shared_dir: Path, meta: bool = True) -> pd.Series:
    chosen = pick(real_labels(shared_dir, "GSE149383"), 3)
    write_genes_by_cells(expression(chosen.index), folder / "erl_total_data_2K.csv", ",")
    if meta:
        rows = [f"{cell},{cell.split('_')[0]},PC9" for cell in chosen.index][::-1]
        (folder / "erl_total_2K_meta.csv").write_text("\n".join(rows) + "\n")
    return chosen


def test_gse149383_loader_matches_released_labels(tmp_path, shared_dir):
    chosen = write_gse149383(tmp_path, shared_dir)
    adata = load_dataset("GSE149383", tmp_path)
    np.testing.assert_array_equal(adata.obs["sensitive"].to_numpy(),
                                  chosen.loc[adata.obs_names].to_numpy())
    assert "meta_label" in adata.obs


def test_gse149383_meta_file_is_optional_but_must_agree(tmp_path, shared_dir):
    chosen = write_gse149383(tmp_path, shared_dir, meta=False)
    adata = load_dataset("GSE149383", tmp_path)
    np.testing.assert_array_equal(adata.obs["sensitive"].to_numpy(), chosen.to_numpy())
    # A meta file whose labels contradict the ids (rows of other cells) is refused.
    rows = [f"{cell},{'sens' if label == 0 else 'resis'}" for cell, label in chosen.items()]
    (tmp_path / "erl_total_2K_meta.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ScdealError, match="disagree with the cell-id prefixes for 6 of 6"):
        load_dataset("GSE149383", tmp_path)


# ------------------------------------------------------------------------------------------
# GSE110894 (mouse)

# Real cell ids (Plate#_well) of the original's GSE110894 output (Fig3_GSE110894_score.csv).
BELL_WELLS = [("RPI1", "A3", "MA9 IBET RESISTANT CELLS"),
              ("RPI1", "A4", "MA9 IBET RESISTANT CELLS"),
              ("RPI3", "A3", "MA9 IBET RESISTANT CELLS- WITHDRAWAL"),
              ("RPI5", "A3", "IBET 400NMOL"),
              ("RPI5", "A4", "IBET 400NMOL"),
              ("RPI7", "A3", "DMSO"),
              ("RPI7", "P24", "EMPTY")]
BELL_EXPECTED = {"MA9 IBET RESISTANT CELLS": 0, "MA9 IBET RESISTANT CELLS- WITHDRAWAL": 0,
                 "IBET 400NMOL": 1, "DMSO": 1, "EMPTY": 1}
# One-to-one mouse/human orthologs (Ensembl) and one id no table knows.
MOUSE_GENES = ["ENSMUSG00000000001", "ENSMUSG00000000028", "ENSMUSG00000000049",
               "ENSMUSG00000000056", "ENSMUSG00000999999"]


def write_gse110894(folder: Path) -> pd.DataFrame:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Bell et al. cell information"])  # three rows before the header
    sheet.append([])
    sheet.append(["MLL-AF9 leukaemia, I-BET-762"])
    sheet.append(["Plate#", "Well position", "Sample name", "Cell type"])
    previous = None
    for plate, well, sample in BELL_WELLS:
        # Plate# and sample name only where they change: the file relies on forward-fill.
        new_block = (plate, sample) != previous
        sheet.append([plate if new_block else None, f"{well}=cell",
                      sample if new_block else None, "MA9"])
        previous = (plate, sample)
    sheet.append([None, None, None, None])  # an all-empty row
    book.save(folder / "GSE110894_CellInfo.xlsx")
    cells = [f"{plate}_{well}" for plate, well, _ in BELL_WELLS]
    matrix = expression(cells, MOUSE_GENES)
    write_genes_by_cells(matrix, folder / "GSE110894.csv", ",")
    return matrix


def test_gse110894_loader_labels_and_empty_wells(tmp_path):
    write_gse110894(tmp_path)
    adata = load_dataset("GSE110894", tmp_path, map_mouse_genes=False)
    kept = [(p, w, s) for p, w, s in BELL_WELLS if s != "EMPTY"]
    assert list(adata.obs_names) == [f"{p}_{w}" for p, w, _ in kept]
    np.testing.assert_array_equal(adata.obs["sensitive"].to_numpy(),
                                  [BELL_EXPECTED[s] for _, _, s in kept])
    assert list(adata.var_names) == MOUSE_GENES
    assert adata.uns["scdeal_dataset"]["n_empty_wells"] == 1
    with_empty = load_dataset("GSE110894", tmp_path, exclude_empty=False, map_mouse_genes=False)
    assert with_empty.n_obs == len(BELL_WELLS)
    assert with_empty.obs["empty_well"].tolist() == [s == "EMPTY" for _, _, s in BELL_WELLS]
    assert with_empty.obs.loc["RPI7_P24", "sensitive"] == 1  # as in the original


def test_gse110894_mouse_genes_mapped_with_rate_reported(tmp_path, shared_dir):
    pytest.importorskip("scdeal.data.genes")
    matrix = write_gse110894(tmp_path)
    table = pd.read_csv(shared_dir / "orthologs" / "mouse2human_orthologs.ensembl+hcop.tsv.gz",
                        sep="\t", dtype=str)
    one2one = table[table["ensembl_homology_type"] == "ortholog_one2one"]
    human = one2one.drop_duplicates("mouse_ensembl_gene").set_index("mouse_ensembl_gene")
    known = [g for g in MOUSE_GENES if g in human.index]
    assert len(known) == 4 and MOUSE_GENES[-1] not in set(table["mouse_ensembl_gene"])
    adata = load_dataset("GSE110894", tmp_path)
    mapping = adata.uns["scdeal_dataset"]["gene_mapping"]
    assert mapping["mapping_rate"] == pytest.approx(4 / 5)
    assert adata.uns["scdeal_dataset"]["gene_id_type"] == "symbol"
    for mouse_id in known:
        symbol = human.loc[mouse_id, "human_symbol"]
        assert symbol in adata.var_names
        column = adata[:, symbol].X
        column = column.toarray() if hasattr(column, "toarray") else column
        np.testing.assert_allclose(np.ravel(column), matrix.loc[adata.obs_names, mouse_id])


# ------------------------------------------------------------------------------------------
# Acquisition


def test_offline_download_failure_lists_the_files_to_place(tmp_path, monkeypatch):
    import pooch

    urls = []

    def no_network(url, **kwargs):
        urls.append(url)
        raise ConnectionError("no route to host")

    monkeypatch.setattr(pooch, "retrieve", no_network)
    with pytest.raises(ScdealError) as err:
        fetch_dataset("GSE110894", cache_dir=tmp_path)
    message = str(err.value)
    assert "GSE110894.csv" in message and "GSE110894_CellInfo.xlsx" in message
    assert "--from DIR" in message and "\n" not in message
    assert urls and all(u.startswith("https://ftp.ncbi.nlm.nih.gov/geo/series/GSE110nnn/"
                                     "GSE110894/suppl/") for u in urls)


def test_download_records_checksums_and_detects_changes(tmp_path, monkeypatch):
    import pooch

    calls = []

    def fake_retrieve(url, known_hash, fname, path, processor=None, progressbar=False):
        calls.append(fname)
        if fname.endswith(".gz"):  # as if GEO had only the plain file
            raise ConnectionError("404")
        target = Path(path) / fname
        target.write_text("gene,PC9_parental_GEF_S1\nEGFR,1\n")
        return str(target)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    folder = fetch_dataset("GSE112274", cache_dir=tmp_path)
    assert folder == tmp_path / "geo" / "GSE112274"
    local = folder / "GSE112274_cell_gene_FPKM.csv"
    recorded = json.loads((folder / "checksums.json").read_text())
    assert recorded == {local.name: hashlib.sha256(local.read_bytes()).hexdigest()}
    n_calls = len(calls)
    assert fetch_dataset("GSE112274", cache_dir=tmp_path) == folder
    assert len(calls) == n_calls  # cached: nothing downloaded again
    local.write_text("gene,PC9_parental_GEF_S1\nEGFR,2\n")
    with pytest.raises(ScdealError, match="changed since it was downloaded"):
        fetch_dataset("GSE112274", cache_dir=tmp_path)


def test_from_dir_missing_files_are_named(tmp_path):
    (tmp_path / "GSE140440.csv").write_text("x\n")
    with pytest.raises(ScdealError, match=r"lacks 1 file\(s\).*Annotation\.txt"):
        fetch_dataset("GSE140440", from_dir=tmp_path)
    (tmp_path / "GSE140440_Annotation.txt.gz").write_bytes(b"")
    assert fetch_dataset("GSE140440", from_dir=tmp_path) == tmp_path


def test_write_dataset_needs_h5ad(tmp_path):
    with pytest.raises(ScdealError, match="must end with .h5ad"):
        write_dataset(ad.AnnData(np.zeros((1, 1))), tmp_path / "x.csv")


# ------------------------------------------------------------------------------------------
# Command line


def test_paper_case_file_names_the_six_datasets():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "cases_paper.toml"
    cases = tomllib.loads(path.read_text())["case"]
    assert [c["name"] for c in cases] == list_datasets()["key"].tolist()
    for case in cases:
        assert case["drug"] == get_dataset(case["name"]).drug
        assert case["target"] == f"{case['name']}.h5ad"
        assert case["label_key"] == "sensitive" and case["gene_ids"] == "symbol"


def test_cli_lists_six_datasets(capsys):
    assert main(["data", "geo", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 6
    assert lines[1].split()[0] == "GSE117872_HN120" and lines[-1].split()[0] == "GSE110894"


def test_cli_writes_labelled_h5ad(tmp_path, shared_dir, capsys):
    source = tmp_path / "src"
    source.mkdir()
    made = write_gse117872(source, shared_dir)
    out = tmp_path / "out" / "GSE117872_HN120.h5ad"
    code = main(["data", "geo", "GSE117872", "--subset", "HN120", "--from", str(source),
                 "--drop-holiday", "--out", str(out)])
    assert code == 0
    adata = ad.read_h5ad(out)
    hn120 = made["hn120"]
    expected_cells = [c for c in hn120.index if not made["holiday"][c]]
    assert list(adata.obs_names) == expected_cells
    np.testing.assert_array_equal(adata.obs["sensitive"].to_numpy(),
                                  hn120.loc[expected_cells].to_numpy())
    dense = adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X
    np.testing.assert_allclose(dense, made["matrix"].loc[expected_cells, GENES].to_numpy())
    info = adata.uns["scdeal_dataset"]
    assert info["accession"] == "GSE117872" and info["subset"] == "HN120"
    assert set(info["files_sha256"]) == {"GSE117872_good_Data_TPM.txt",
                                         "GSE117872_good_Data_cellinfo.txt"}
    assert "holiday cells dropped" in capsys.readouterr().out
    assert not list(out.parent.glob(".*tmp*"))  # atomic write left no temporary file


def test_cli_reports_missing_files_as_one_line(tmp_path, capsys):
    code = main(["data", "geo", "GSE149383", "--from", str(tmp_path), "--out",
                 str(tmp_path / "x.h5ad")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("scdeal: error:") and "erl_total_data_2K.csv" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "x.h5ad").exists()


def test_read_matrix_orientation_from_names_never_from_shape(tmp_path):
    from scdeal.datasets.loaders import read_matrix

    genes = ["TP53", "EGFR", "MYC", "KRAS", "GAPDH", "ACTB", "CD44", "ALB", "SOX2", "MKI67",
             "VIM", "PTEN", "RB1", "CDK4", "CCND1", "BRAF", "NRAS", "ERBB2", "MET", "AXL"]
    cells = [f"cell_{i}" for i in range(30)]  # more cells than genes: the old shape rule fails
    no_known_ids = lambda labels: np.zeros(len(labels), bool)  # noqa: E731
    table = pd.DataFrame(np.arange(600).reshape(20, 30), index=genes, columns=cells)
    table.to_csv(tmp_path / "genes_by_cells.csv")
    out = read_matrix(tmp_path / "genes_by_cells.csv", no_known_ids)
    assert list(out.index) == cells and list(out.columns) == genes
    pd.DataFrame(np.ones((3, 4)), index=["a", "b", "c"], columns=["w", "x", "y", "z"]).to_csv(
        tmp_path / "unknown.csv")
    with pytest.raises(ScdealError, match="cannot tell which axis holds the cells"):
        read_matrix(tmp_path / "unknown.csv", no_known_ids)


def test_gzip_downloads_are_checked_whole_and_a_truncated_one_is_never_used(tmp_path,
                                                                            monkeypatch):
    import gzip

    import pooch

    table = b"gene,PC9_parental_GEF_S1\nEGFR,1\n" * 2000
    packed = gzip.compress(table)
    served = [packed[: len(packed) // 2]]

    def fake_retrieve(url, known_hash, fname, path, processor=None, progressbar=False):
        if not fname.endswith(".gz"):
            raise ConnectionError("404")
        target = Path(path) / fname
        target.write_bytes(served[0])
        return str(target)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    with pytest.raises(ScdealError, match="truncated or corrupt"):
        fetch_dataset("GSE112274", cache_dir=tmp_path)
    folder = tmp_path / "geo" / "GSE112274"
    assert not list(folder.glob("*.csv*"))  # nothing partial left to be found later
    served[0] = packed
    assert fetch_dataset("GSE112274", cache_dir=tmp_path) == folder
    local = folder / "GSE112274_cell_gene_FPKM.csv"
    assert local.read_bytes() == table and not list(folder.glob("*.gz"))
    assert json.loads((folder / "checksums.json").read_text()) == {
        local.name: hashlib.sha256(table).hexdigest()}
