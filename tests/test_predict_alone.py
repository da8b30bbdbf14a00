"""A cell's prediction does not depend on the cells predicted with it: alone, in a batch of
10, or with every cell, through ``predict``, ``predict_file`` and ``scdeal predict``; the
preprocessing's dataset-level choices (value kind, gene filter, normalisation target) are fixed
at fit time and saved with the model."""

from __future__ import annotations

import anndata
import numpy as np
import pytest

from scdeal.cli import main

TINY = dict(hidden_dims=(16,), latent_dim=4, predictor_dims=(4,), pretrain_epochs=2,
            predictor_epochs=2, transfer_epochs=2, n_models=2)


@pytest.fixture(scope="module")
def counts_and_model(bulk, tmp_path_factory):
    import scipy.sparse as sp

    from scdeal import ScDEAL
    from scdeal.data.simulate import demo_target

    adata, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    # 20 genes expressed in one cell each, with many counts: the fit's gene filter
    # (min_cells=3) drops them; a filter run on other cells would keep or drop others, and
    # normalising over them would change those cells' values.
    rare = [g for g in bulk.expression.columns if g not in set(adata.var_names)][:20]
    extra = np.zeros((adata.n_obs, len(rare)), np.float32)
    extra[np.arange(len(rare)), np.arange(len(rare))] = 500.0
    adata = anndata.concat([adata, anndata.AnnData(sp.csr_matrix(extra), obs=adata.obs,
                                                   var=__import__("pandas").DataFrame(
                                                       index=rare))],
                           axis=1, merge="first")
    model = ScDEAL(TINY, cache=False).fit(adata, "Gefitinib", bulk=bulk.without_lines(held),
                                          gene_ids="symbol")
    folder = tmp_path_factory.mktemp("alone") / "model"
    model.save(folder)
    return adata, model, folder


def _subsets(adata):
    return {"all": adata, "ten": adata[:10].copy(), "one": adata[3:4].copy()}


def test_predict_gives_a_cell_the_same_probability_alone_in_ten_and_with_all(counts_and_model):
    adata, model, _ = counts_and_model
    full = model.predict_proba(adata)
    for name, cells in _subsets(adata).items():
        p = model.predict_proba(cells)
        np.testing.assert_allclose(p.to_numpy(), full.loc[cells.obs_names].to_numpy(),
                                   atol=1e-5, err_msg=name)


def test_a_saved_model_predicts_files_and_single_cells_alike(counts_and_model, tmp_path):
    from scdeal import ScDEAL

    adata, model, folder = counts_and_model
    full = model.predict_proba(adata)
    loaded = ScDEAL.load(folder)
    for name, cells in _subsets(adata).items():
        path = tmp_path / f"{name}.h5ad"
        cells.write_h5ad(path)
        streamed = loaded.predict_file(path, chunk_size=7).obs["sens_preds"]  # chunks of 7
        np.testing.assert_allclose(streamed.to_numpy(), full.loc[cells.obs_names].to_numpy(),
                                   atol=1e-5, err_msg=name)
        out = tmp_path / f"{name}_predicted.h5ad"
        assert main(["predict", "--model", str(folder), "--target", str(path), "--gene-ids",
                     "symbol", "--out", str(out)]) == 0
        cli = anndata.read_h5ad(out).obs["sens_preds"]
        np.testing.assert_allclose(cli.to_numpy(), full.loc[cells.obs_names].to_numpy(),
                                   atol=1e-5, err_msg=name)


def test_a_layer_and_gene_ids_are_arguments_not_model_state(counts_and_model):
    adata, model, _ = counts_and_model
    cells = adata[:5].copy()
    expected = model.predict_proba(cells).to_numpy()
    layered = anndata.AnnData(np.zeros(cells.shape, np.float32), obs=cells.obs, var=cells.var)
    layered.layers["counts"] = cells.X.copy()
    np.testing.assert_allclose(model.predict_proba(layered, layer="counts").to_numpy(),
                               expected, atol=1e-6)
    before = model.gene_ids
    model.predict(cells, gene_ids="symbol")
    assert model.gene_ids == before
    from scdeal.errors import ScdealError

    with pytest.raises(ScdealError, match="layer 'spliced' is not in the cells' layers"):
        model.predict(cells, layer="spliced")


def test_check_gives_the_fits_verdict_on_its_own_cells_and_one_on_new_ones(counts_and_model,
                                                                           tmp_path, capsys):
    from scdeal import ScDEAL

    adata, model, folder = counts_and_model
    loaded = ScDEAL.load(folder)
    same = loaded.check(adata)
    for key in ("member_agreement", "member_consensus", "bulk_test_auroc", "mean_cell_sd"):
        assert same[key] == pytest.approx(model.reliability[key], abs=1e-5), key
    assert same["reliable"] == model.reliability["reliable"]
    new = loaded.check(adata[:12].copy())
    assert new["n_cells"] == 12 and new["reliable"] in (True, False)
    path = tmp_path / "twelve.h5ad"
    adata[:12].copy().write_h5ad(path)
    assert main(["predict", "--model", str(folder), "--target", str(path), "--gene-ids",
                 "symbol", "--out", str(tmp_path / "p.h5ad")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1].strip()
    assert line.startswith("reliable on these 12 cells") == bool(new["reliable"])
    assert line.startswith("NOT reliable on these 12 cells") == (not new["reliable"])
