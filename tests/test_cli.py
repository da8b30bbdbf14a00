"""The command line end to end on a tiny case (real GDSC, simulated cells in the layout of the
SCAD files): run, predict, data gdsc, data info, errors."""

from __future__ import annotations

import json

import anndata
import numpy as np
import pandas as pd
import pytest

from scdeal.cli import main

TINY = {"hidden_dims": [32], "latent_dim": 8, "predictor_dims": [8], "pretrain_epochs": 3,
        "predictor_epochs": 3, "transfer_epochs": 3, "patience": 2, "n_models": 2}


@pytest.fixture(scope="module")
def run_dir(gdsc_data_dir, target_file, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    out = tmp_path_factory.mktemp("cli") / "run"
    config = out.parent / "tiny.json"
    config.write_text(json.dumps(TINY))
    target = target_file
    try:
        code = main(["--quiet", "run", "--drug", "Gefitinib", "--target", str(target),
                     "--label-key", "response", "--gene-ids", "entrez", "--config", str(config),
                     "--seed", "1", "--out", str(out)])
        yield out, target
    finally:
        mp.undo()
    assert code == 0


def test_run_writes_the_documented_files(run_dir):
    out, _ = run_dir
    assert {p.name for p in out.iterdir()} == {"predictions.h5ad", "model", "run.json",
                                               "metrics.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("auroc", "ap", "f1", "f1_weighted", "mcc", "balanced_accuracy", "n_cells",
                "prevalence"):
        assert key in metrics
    assert metrics["n_cells"] == 66
    run = json.loads((out / "run.json").read_text())
    assert run["drug"] == "Gefitinib" and run["config"]["seed"] == 1
    assert {"read_target", "bulk_extractor", "transfer", "predict", "total"} <= set(run["timings_s"])
    pred = anndata.read_h5ad(out / "predictions.h5ad")
    y = pred.obs["response"].astype(int)
    from sklearn.metrics import roc_auc_score

    assert metrics["auroc"] == pytest.approx(roc_auc_score(y, pred.obs["sens_preds"]))


def test_predict_with_the_saved_model_gives_the_same_predictions(run_dir, tmp_path, gdsc_data_dir):
    out, target = run_dir
    dest = tmp_path / "pred.h5ad"
    assert main(["--quiet", "predict", "--model", str(out), "--target", str(target),
                 "--gene-ids", "entrez", "--out", str(dest)]) == 0
    again = anndata.read_h5ad(dest)
    first = anndata.read_h5ad(out / "predictions.h5ad")
    np.testing.assert_array_equal(again.obs["sens_preds"], first.obs["sens_preds"])
    assert "metrics" not in again.uns["scdeal"]  # no labels asked for, none used


def test_unknown_label_values_fail_before_training(tmp_path, capsys, gdsc_data_dir, monkeypatch):
    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    table = pd.DataFrame(np.random.default_rng(0).normal(size=(10, 4)),
                         columns=["7157", "1956", "3845", "4609"])
    table.insert(0, "response", ["yes", "no"] * 5)
    path = tmp_path / "cells.csv"
    table.to_csv(path)
    code = main(["run", "--drug", "Gefitinib", "--target", str(path), "--label-key", "response",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "error" in err and len(err.strip().splitlines()) == 1
    assert "yes" in err or "no" in err
    assert not (tmp_path / "out").exists()


def test_data_gdsc_writes_labels(tmp_path, capsys, gdsc_data_dir, monkeypatch):
    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    dest = tmp_path / "plx.csv"
    assert main(["--quiet", "data", "gdsc", "--drug", "PLX.4720", "--out", str(dest)]) == 0
    table = pd.read_csv(dest)
    assert {"cell_line", "cosmic_id", "response", "label"} <= set(table.columns)
    screened = table.dropna(subset=["response"])
    assert table.label.isna().sum() == table.response.isna().sum()
    cutoff = float(capsys.readouterr().out.split("cut at ")[1].split(",")[0])
    assert ((screened.response < cutoff) == (screened.label == 1)).all()
    assert main(["data", "gdsc", "--drug", "NotADrug", "--out", str(tmp_path / "x.csv")]) == 1
    assert not (tmp_path / "x.csv").exists()


def test_data_info_on_a_scad_layout_file(target_file, capsys):
    target = target_file
    assert main(["data", "info", str(target), "--label-key", "response", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_cells"] == 66 and info["value_kind"] == "scaled"
