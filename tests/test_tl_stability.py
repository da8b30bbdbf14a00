"""Stability test: stratified subsampling without replacement, and two tiny repeats through
``scdeal stability``."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from scdeal.cli import main
from scdeal.errors import ScdealError
from scdeal.tl import stratified_subsample
from scdeal.tl.stability import summarize

TINY = dict(hidden_dims=[32], latent_dim=8, predictor_dims=[8], pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=64, n_models=1)


@pytest.mark.parametrize("n_sens,n_res", [(33, 33), (20, 80), (7, 13)])
def test_subsample_sizes_stratification_no_replacement(n_sens, n_res):
    y = np.r_[np.ones(n_sens, int), np.zeros(n_res, int)]
    n = len(y)
    idx = stratified_subsample(y, 0.8, seed=3)
    # sklearn's rule: the held-out part is ceil(0.2 n), the subsample the rest
    assert len(idx) == n - math.ceil(0.2 * n)
    assert len(set(idx)) == len(idx)                  # without replacement
    assert idx.min() >= 0 and idx.max() < n and (np.diff(idx) > 0).all()
    # class shares preserved up to one cell
    assert abs(y[idx].sum() - 0.8 * n_sens) <= 1
    assert abs((1 - y[idx]).sum() - 0.8 * n_res) <= 1
    np.testing.assert_array_equal(idx, stratified_subsample(y, 0.8, seed=3))
    assert not np.array_equal(idx, stratified_subsample(y, 0.8, seed=4))


def test_subsample_bad_input():
    with pytest.raises(ScdealError, match="at least 2 cells of each class"):
        stratified_subsample(np.r_[np.ones(10, int), 0], 0.8, 0)
    with pytest.raises(ScdealError, match="fraction must lie in"):
        stratified_subsample(np.r_[np.ones(10, int), np.zeros(10, int)], 1.0, 0)


def test_summary_mean_and_sd():
    runs = pd.DataFrame({"auroc": [0.7, 0.8, 0.9], "f1": [0.5, np.nan, 0.7]})
    s = summarize(runs, ["auroc", "f1"]).set_index("metric")
    assert s.loc["auroc", "mean"] == pytest.approx(0.8)
    assert s.loc["auroc", "sd"] == pytest.approx(0.1)
    assert s.loc["f1", "n"] == 2 and s.loc["f1", "sd"] == pytest.approx(np.std([0.5, 0.7],
                                                                               ddof=1))


def test_stability_command(target_file, gdsc_data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    target = target_file
    out = tmp_path / "stab"
    code = main(["--quiet", "stability", "--drug", "Gefitinib", "--target", str(target),
                 "--label-key", "response", "--gene-ids", "entrez", "--repeats", "2",
                 "--config", str(config), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    runs = pd.read_csv(out / "stability_runs.csv")
    assert list(runs["seed"]) == [1, 2]
    labels = pd.read_csv(target, sep="\t", index_col=0, usecols=[0, 1])["response"]
    n = len(labels)
    assert (runs["n_cells"] == n - math.ceil(0.2 * n)).all()
    sub = pd.read_csv(out / "subsamples.csv")
    for seed, cells in sub.groupby("seed")["cell"]:
        assert cells.is_unique and set(cells) <= set(labels.index.astype(str))
        # stratified: the subsample keeps the 33/33 balance
        assert labels.loc[cells].sum() == runs.set_index("seed").loc[seed, "n_sensitive"] == 26
    assert set(sub[sub.seed == 1].cell) != set(sub[sub.seed == 2].cell)
    summary = pd.read_csv(out / "stability_summary.csv").set_index("metric")
    for metric in ("auroc", "ap", "f1", "f1_weighted", "mcc", "balanced_accuracy",
                   "score_r_sensitive", "score_r_resistant"):
        values = runs[metric].dropna()  # a tiny model may find no marker genes: NaN r
        assert summary.loc[metric, "n"] == len(values)
        assert summary.loc[metric, "mean"] == pytest.approx(values.mean(), nan_ok=True)
        assert summary.loc[metric, "sd"] == pytest.approx(values.std(ddof=1), nan_ok=True)
    assert summary.loc["auroc", "n"] == 2 and np.isfinite(summary.loc["auroc", "sd"])
    assert (out / "figures" / "stability_boxplot.png").stat().st_size > 1000
    assert (out / "figures" / "stability_boxplot.pdf").is_file()
    assert json.loads((out / "stability.json").read_text())["repeats"] == 2


def test_stability_command_needs_labels(target_file, tmp_path, capsys):
    target = target_file
    code = main(["stability", "--drug", "Gefitinib", "--target", str(target),
                 "--out", str(tmp_path / "x")])
    assert code == 1
    assert "give --label-key" in capsys.readouterr().err


def test_stability_test_keeps_its_tables_under_key_added(monkeypatch):
    """The repeats' tables land in adata.uns[key_added] (a stand-in model: no training)."""
    import scdeal.model
    from scdeal.model import METRIC_NAMES
    from scdeal.tl import stability_test

    class Scored:
        def __init__(self, config):
            self.seed = config.seed

        def fit(self, sub, drug, **kwargs):
            pass

        def predict(self, sub, **kwargs):
            sub.uns["scdeal"] = {"metrics": {m: self.seed / 10 for m in METRIC_NAMES}}

    monkeypatch.setattr(scdeal.model, "ScDEAL", Scored)
    adata = AnnData(np.ones((20, 3), np.float32),
                    obs=pd.DataFrame({"response": [0, 1] * 10},
                                     index=[f"c{i}" for i in range(20)]))
    res = stability_test(adata, "X", "response", repeats=2, bulk=object(), gene_scores=False,
                         key_added="stab")
    pd.testing.assert_frame_equal(adata.uns["stab"]["runs"], res.runs)
    assert list(adata.uns["stab"]["runs"]["auroc"]) == [0.1, 0.2]
    assert set(adata.uns["stab"]) == {"runs", "summary"}
