"""Large targets: training on a sample of the cells, sparse cells standardised a block at a
time, Leiden on a subsample, and ``scdeal run --backed`` (the file read a block at a time)."""

from __future__ import annotations

import json

import anndata
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scdeal.cli import main
from scdeal.model import ScDEAL, ScDealConfig
from scdeal.model._fitting import leiden_clusters
from scdeal.model.prepare import CellRows, Standardizer, training_rows

TINY = dict(hidden_dims=(32,), latent_dim=8, predictor_dims=(8,), pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=16, n_models=2,
            seed=2)


def test_sparse_rows_standardise_like_the_dense_matrix():
    rng = np.random.default_rng(0)
    dense = (rng.poisson(0.4, size=(300, 50)) * rng.lognormal(size=(300, 1))).astype(np.float32)
    dense[:, 7] = 0  # a gene with no variance: centred only
    sparse = sp.csr_matrix(dense)
    scaler_dense, scaler_sparse = Standardizer.fit(dense), Standardizer.fit(sparse)
    np.testing.assert_allclose(scaler_sparse.mean, scaler_dense.mean, rtol=1e-6)
    np.testing.assert_allclose(scaler_sparse.scale, scaler_dense.scale, rtol=1e-5)
    rows = np.array([5, 0, 299, 5])
    expected = scaler_dense.transform(dense)[rows]
    np.testing.assert_allclose(CellRows(sparse, scaler_dense).dense(rows), expected, rtol=1e-6)
    view = CellRows(sparse, scaler_dense).subset([10, 20, 30])
    np.testing.assert_allclose(view[torch.tensor([2, 0])].numpy(),
                               scaler_dense.transform(dense)[[30, 10]], rtol=1e-6)
    blocks = list(CellRows(dense, scaler_dense).blocks(128))
    assert [len(b) for b in blocks] == [128, 128, 44]
    np.testing.assert_allclose(np.concatenate(blocks), scaler_dense.transform(dense))


class _Identity(torch.nn.Module):
    """An 'extractor' whose embedding is its input (the points are the embedding)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x):
        return x


def test_leiden_on_a_sample_gives_every_cell_the_cluster_of_its_group():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [30, 0], [0, 30]], dtype=np.float32)
    group = np.repeat([0, 1, 2], 400)
    points = centres[group] + rng.normal(size=(1200, 2)).astype(np.float32)
    labels = leiden_clusters(_Identity(), CellRows(points, None), seed=0, resolution=0.05,
                             max_cells=150).numpy()
    assert len(labels) == 1200
    # Each group is one cluster (at this resolution), different from the other groups'.
    per_group = [set(labels[group == g]) for g in range(3)]
    assert all(len(s) == 1 for s in per_group)
    assert len(set.union(*per_group)) == 3


def test_a_fit_beyond_max_training_cells_trains_on_a_seeded_sample(bulk, target_cells):
    config = ScDealConfig(**TINY, max_training_cells=40)
    model = ScDEAL(config, cache=False).fit(target_cells.copy(), "Gefitinib", bulk=bulk,
                                            gene_ids="entrez")
    assert model.training["training_sample"] == {"cells": 40, "of": 66}
    assert model.training["n_target_cells"] == 40
    p = model.predict_proba(target_cells)
    assert p.notna().all() and len(p) == 66  # every cell predicted
    # The sample is the seeded one: fitting on it directly gives the same model.
    rows = training_rows(66, 40, config.seed)
    direct = ScDEAL(config, cache=False).fit(target_cells[rows].copy(), "Gefitinib",
                                             bulk=bulk, gene_ids="entrez")
    assert direct.training["training_sample"] is None
    np.testing.assert_array_equal(direct.predict_proba(target_cells), p)


@pytest.fixture(scope="module")
def backed_and_in_memory(gdsc_data_dir, target_cells, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    folder = tmp_path_factory.mktemp("backed")
    target = folder / "cells.h5ad"
    cells = target_cells.copy()
    cells.obs["response"] = (np.arange(cells.n_obs) % 2).astype(int)  # any labels
    cells.write_h5ad(target)
    config = folder / "config.json"
    config.write_text(json.dumps({**TINY, "max_training_cells": 40}))
    common = ["--quiet", "run", "--drug", "Gefitinib", "--target", str(target), "--gene-ids",
              "entrez", "--config", str(config), "--label-key", "response", "--no-cache"]
    try:
        assert main([*common, "--backed", "--out", str(folder / "backed")]) == 0
        assert main([*common, "--out", str(folder / "memory")]) == 0
    finally:
        mp.undo()
    return target, folder / "backed", folder / "memory"


def test_a_backed_run_predicts_every_cell_like_the_in_memory_run(backed_and_in_memory):
    target, backed, memory = backed_and_in_memory
    got, expected = (anndata.read_h5ad(d / "predictions.h5ad") for d in (backed, memory))
    source = anndata.read_h5ad(target)
    assert list(got.obs_names) == list(source.obs_names)
    np.testing.assert_array_equal(np.asarray(got.X), np.asarray(source.X))  # the file, copied
    assert got.obs["sens_preds"].notna().all()
    assert set(expected.obs.columns) <= set(got.obs.columns)
    for column in ("sens_preds", "sens_preds_pret", "sens_preds_sd"):
        np.testing.assert_allclose(got.obs[column], expected.obs[column], atol=1e-6)
    np.testing.assert_allclose(got.obsm["X_scdeal"], expected.obsm["X_scdeal"], atol=1e-5)
    run = json.loads((backed / "run.json").read_text())
    assert run["backed"] is True
    assert run["training"]["training_sample"] == {"cells": 40, "of": 66}
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (backed, memory)]
    assert metrics[0]["auroc"] == pytest.approx(metrics[1]["auroc"], abs=1e-6)
    assert json.loads(got.uns["scdeal"]["summary_json"])["metrics"]["n_cells"] == 66


def test_backed_needs_an_h5ad_file(tmp_path, capsys, gdsc_data_dir, monkeypatch):
    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    table = tmp_path / "cells.csv"
    table.write_text("cell,TP53,EGFR\nc1,1,2\nc2,3,4\n")
    code = main(["run", "--drug", "Gefitinib", "--target", str(table), "--backed",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and ".h5ad" in err
    assert not (tmp_path / "out").exists()


def test_a_file_larger_than_its_share_of_memory_is_read_backed_without_the_flag(
        backed_and_in_memory, gdsc_data_dir, tmp_path, monkeypatch, capsys):
    from scdeal.data import backed as backed_module

    target, backed, _ = backed_and_in_memory
    size = backed_module.matrix_bytes(target)
    assert size == anndata.read_h5ad(target).X.nbytes  # dense float32: the estimate is exact
    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    config = target.parent / "config.json"  # the fixture's settings
    common = ["run", "--drug", "Gefitinib", "--target", str(target), "--gene-ids", "entrez",
              "--config", str(config), "--label-key", "response", "--no-cache"]
    # As if this machine had 10 times the file's matrix in memory: 10% > the 5% share.
    monkeypatch.setattr(backed_module, "total_memory", lambda: 10 * size)
    assert main([*common, "--out", str(tmp_path / "auto")]) == 0
    printed = capsys.readouterr().out.splitlines()
    notice = [line for line in printed if "block of cells at a time" in line]
    assert len(notice) == 1 and "cells.h5ad" in notice[0] and "--no-backed" in notice[0]
    run = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert run["backed"] is True
    assert run["training"]["training_sample"] == {"cells": 40, "of": 66}
    np.testing.assert_allclose(
        anndata.read_h5ad(tmp_path / "auto" / "predictions.h5ad").obs["sens_preds"],
        anndata.read_h5ad(backed / "predictions.h5ad").obs["sens_preds"], atol=1e-6)
    # scdeal predict streams such a file in chunks the same way.
    assert main(["predict", "--model", str(tmp_path / "auto"), "--target", str(target),
                 "--gene-ids", "entrez", "--out", str(tmp_path / "pred.h5ad")]) == 0
    assert "chunks of 20,000 cells" in capsys.readouterr().out
    streamed = anndata.read_h5ad(tmp_path / "pred.h5ad")
    assert streamed.n_vars == 0 and streamed.obs["sens_preds"].notna().all()
    # --no-backed reads it whole, and a machine with room to spare does so unasked.
    assert main([*common, "--no-backed", "--out", str(tmp_path / "whole")]) == 0
    assert "backed" not in json.loads((tmp_path / "whole" / "run.json").read_text())
    monkeypatch.setattr(backed_module, "total_memory", lambda: 100 * size)
    assert main([*common, "--out", str(tmp_path / "roomy")]) == 0
    assert "block of cells" not in capsys.readouterr().out
    assert "backed" not in json.loads((tmp_path / "roomy" / "run.json").read_text())


def test_fit_given_a_large_file_trains_on_a_sample_read_in_blocks(
        backed_and_in_memory, bulk, monkeypatch, caplog):
    from scdeal.data import backed as backed_module

    target, _, _ = backed_and_in_memory
    config = ScDealConfig(**TINY, max_training_cells=40)
    monkeypatch.setattr(backed_module, "total_memory",
                        lambda: 10 * backed_module.matrix_bytes(target))
    with caplog.at_level("INFO", logger="scdeal"):
        model = ScDEAL(config, cache=False).fit(target, "Gefitinib", bulk=bulk,
                                                gene_ids="entrez")
    assert "block of cells at a time" in caplog.text
    assert model.training["training_sample"] == {"cells": 40, "of": 66}
    # The same seeded sample as a fit given the cells in memory.
    cells = anndata.read_h5ad(target)
    direct = ScDEAL(config, cache=False).fit(cells, "Gefitinib", bulk=bulk, gene_ids="entrez")
    np.testing.assert_allclose(direct.predict_proba(cells), model.predict_proba(cells),
                               atol=1e-6)


def test_the_old_home_of_the_backed_helpers_still_resolves_with_a_warning():
    from scdeal.data import backed

    with pytest.warns(FutureWarning, match="use scdeal.data.backed.reads_backed"):
        from scdeal.model.backed import reads_backed
    assert reads_backed is backed.reads_backed
    with pytest.raises(ImportError):
        from scdeal.model.backed import no_such_name  # noqa: F401
