"""The scDEAL model on a tiny real case: splits, sampling, scaling, determinism, save/load,
predictions in AnnData, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData

from scdeal.errors import ScdealError
from scdeal.model import ScDEAL, ScDealConfig, classification_metrics
from scdeal.model.prepare import bulk_expression_on_symbols, resample, stratified_split

TINY = dict(hidden_dims=(32,), latent_dim=8, predictor_dims=(8,), pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=64, n_models=1)


@pytest.fixture(scope="module")
def fitted(bulk, target_cells):
    model = ScDEAL(ScDealConfig(**TINY, seed=3))
    model.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")
    return model


# ------------------------------------------------------------------------------------------
# pieces


def test_stratified_split_fractions_and_class_balance():
    y = np.array([1] * 40 + [0] * 160)
    train, val, test = stratified_split(y, (0.6, 0.2, 0.2), seed=0)
    assert len(set(train) | set(val) | set(test)) == 200
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert (len(train), len(val), len(test)) == (120, 40, 40)
    for part in (train, val, test):
        assert y[part].mean() == pytest.approx(0.2, abs=0.03)


@pytest.mark.parametrize("method", ["upsampling", "downsampling", "smote"])
def test_resampling_balances_classes(method):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5)).astype(np.float32)
    y = np.array([1] * 15 + [0] * 85)
    X_res, y_res = resample(X, y, method, seed=0)
    n1, n0 = int((y_res == 1).sum()), int((y_res == 0).sum())
    assert n1 == n0
    assert n1 == (15 if method == "downsampling" else 85)
    if method == "upsampling":  # duplicates of real rows only
        rows = {tuple(r) for r in X}
        assert all(tuple(r) in rows for r in X_res)
    if method == "smote":  # new points are interpolations of minority rows
        assert len({tuple(r) for r in X_res}) > len({tuple(r) for r in X})


def test_resampling_none_and_unknown():
    X, y = np.zeros((4, 2), np.float32), np.array([0, 0, 1, 1])
    assert resample(X, y, "none", 0)[0] is X
    with pytest.raises(ScdealError, match="unknown sampling"):
        resample(X, y, "bootstrap", 0)


def test_config_round_trip_and_validation(tmp_path):
    config = ScDealConfig(latent_dim=16, sampling="smote")
    assert ScDealConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ScdealError, match="unknown configuration keys"):
        ScDealConfig.from_dict({"latent": 3})
    with pytest.raises(ScdealError, match="sampling must be one of"):
        ScDealConfig(sampling="bootstrap")
    path = tmp_path / "c.toml"
    path.write_text('preset = "paper_GSE112274"\nseed = 5\n')
    loaded = ScDealConfig.from_file(path)
    assert (loaded.latent_dim, loaded.seed, loaded.sampling) == (256, 5, "none")


# ------------------------------------------------------------------------------------------
# the fitted model


def test_bulk_scaler_is_label_free_and_the_split_is_the_drugs(fitted, bulk):
    # The bulk standardisation (like M_b's pre-training) is over every GDSC line, so it is
    # the same for every drug; P's split is still the drug's labelled lines only.
    expr, _ = bulk_expression_on_symbols(bulk)
    X = expr[fitted.bulk_genes].to_numpy(np.float64)
    scaler = fitted.members[0].bulk_scaler
    np.testing.assert_allclose(scaler.mean, X.mean(0), rtol=1e-4, atol=1e-5)
    labels = bulk.labels_for("Gefitinib")[0].labels.dropna().astype(int)
    labels = labels[labels.index.isin(expr.index)]
    assert len(labels) < len(expr)
    train, val, test = stratified_split(labels.to_numpy(), fitted.config.split, fitted.config.seed)
    counts = fitted.training["bulk_lines"]
    assert (counts["train"], counts["val"], counts["test"]) == (len(train), len(val), len(test))


def test_predictions_written_into_anndata(fitted, target_cells):
    adata = target_cells.copy()
    before_X = adata.X.copy()
    fitted.predict(adata, label_key="response", key_prefix="gef_")
    p = adata.obs["gef_sens_preds"].to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(adata.obs["gef_rest_preds"], 1 - p, atol=1e-6)
    label = adata.obs["gef_sens_label"]
    assert list(label.cat.categories) == [0, 1]
    assert (label.astype(int).to_numpy() == (p >= 0.5)).all()
    assert adata.obsm["gef_X_scdeal"].shape == (adata.n_obs, fitted.config.latent_dim)
    assert "gef_sens_preds_pret" in adata.obs
    info = adata.uns["gef_scdeal"]
    expected = classification_metrics(adata.obs["response"].astype(int), p)
    assert info["metrics"]["auroc"] == pytest.approx(expected["auroc"])
    assert info["drug"] == "Gefitinib" and info["seed"] == 3
    np.testing.assert_array_equal(adata.X, before_X)  # X untouched


def test_transfer_changes_the_target_encoder(fitted):
    pre = fitted.pretransfer_net.extractor.state_dict()
    post = fitted.target_net.extractor.state_dict()
    best = [h for h in fitted.training["history"] if h["stage"] == "transfer"][0]["best_epoch"]
    changed = any(not torch.equal(pre[k], post[k]) for k in pre)
    assert changed == (best > 0)


def test_cluster_term_makes_predictions_consistent_within_clusters(bulk, target_cells,
                                                                   tmp_path, transfer_kept):
    def fit(weight):
        model = ScDEAL(ScDealConfig(**TINY, seed=4, cluster_weight=weight), cache=tmp_path)
        model.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")
        return model

    plain, clustered = fit(0.0), fit(20.0)
    assert plain.training["n_clusters"] is None
    assert clustered.training["n_clusters"] >= 2
    # The clusters the term used (Leiden on the drug-independent cell embedding), as cached.
    from scdeal.model.cache import ModelCache

    store = ModelCache(tmp_path)
    stored = [store.get(e["stage"], e["key"])[0] for e in store.entries()
              if e["stage"] == "target_extractor"]
    clusters = [t["clusters"].numpy() for t in stored if "clusters" in t]
    assert len(clusters) == 1
    clusters = clusters[0]
    assert clusters.max() + 1 == clustered.training["n_clusters"]

    def within_cluster_variance(model):
        p = model.predict_proba(target_cells).to_numpy()
        return sum(((p[clusters == c] - p[clusters == c].mean()) ** 2).sum()
                   for c in np.unique(clusters)) / len(p)

    assert within_cluster_variance(clustered) < 0.7 * within_cluster_variance(plain)


def test_separate_gene_spaces_use_each_domain_s_own_genes_and_warn(bulk, target_cells,
                                                                    caplog):
    model = ScDEAL(ScDealConfig(**TINY, seed=1, gene_space="separate", cluster_weight=0.0))
    with caplog.at_level("WARNING", logger="scdeal"):
        model.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")
    assert "may come out inverted" in caplog.text
    # every GDSC gene, not only those the cells share
    assert model.bulk_genes == list(bulk_expression_on_symbols(bulk)[0].columns)
    assert set(model.target_genes) - set(model.bulk_genes)  # cell-only genes are kept
    p = model.predict_proba(target_cells).to_numpy()
    assert p.shape == (target_cells.n_obs,) and ((p >= 0) & (p <= 1)).all()


def test_same_seed_same_predictions(bulk, target_cells, fitted):
    again = ScDEAL(ScDealConfig(**TINY, seed=3))
    again.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")
    a = fitted.predict_proba(target_cells)
    b = again.predict_proba(target_cells)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    other = ScDEAL(ScDealConfig(**TINY, seed=4))
    other.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")
    assert not np.array_equal(a.to_numpy(), other.predict_proba(target_cells).to_numpy())


def test_save_load_round_trip(fitted, target_cells, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = ScDEAL.load(tmp_path / "m")
    assert not loaded.target_net.training
    np.testing.assert_array_equal(fitted.predict_proba(target_cells).to_numpy(),
                                  loaded.predict_proba(target_cells).to_numpy())
    a = fitted.predict(target_cells, copy=True)
    b = loaded.predict(target_cells, copy=True)
    np.testing.assert_array_equal(a.obs["sens_preds_pret"], b.obs["sens_preds_pret"])
    np.testing.assert_array_equal(a.obsm["X_scdeal"], b.obsm["X_scdeal"])
    with pytest.raises(ScdealError, match="exists"):
        fitted.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json", "genes.json", "model.safetensors", "reliability.json", "scalers.npz",
        "training.json"]


def test_ensemble_averages_members_and_round_trips(bulk, target_cells, tmp_path):
    from scdeal.nn import EnsembleNet

    model = ScDEAL(ScDealConfig(**{**TINY, "n_models": 2}, seed=7))
    model.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")
    assert isinstance(model.target_net, EnsembleNet) and len(model.members) == 2
    X, _ = model.target_matrix(target_cells)
    x = torch.as_tensor(X)
    members = [m.target_net.predict_proba(x).numpy() for m in model.members]
    assert not np.allclose(members[0], members[1])  # differently seeded members
    ensemble = model.predict_proba(target_cells).to_numpy()
    np.testing.assert_allclose(ensemble, np.mean(members, axis=0), atol=1e-6)
    model.save(tmp_path / "ens")
    loaded = ScDEAL.load(tmp_path / "ens")
    np.testing.assert_array_equal(loaded.predict_proba(target_cells).to_numpy(), ensemble)


def test_load_refuses_a_target_whose_genes_do_not_fit(fitted, target_cells):
    half = target_cells[:, : target_cells.n_vars // 3].copy()
    with pytest.raises(ScdealError, match="does not fit this model"):
        fitted.predict(half)


def test_load_refuses_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ScdealError, match="not a saved scdeal model"):
        ScDEAL.load(tmp_path)


# ------------------------------------------------------------------------------------------
# bad input


def test_no_shared_genes(bulk):
    adata = AnnData(np.random.default_rng(0).normal(size=(30, 300)).astype(np.float32),
                    var=pd.DataFrame(index=[f"NOTAGENE{i}" for i in range(300)]))
    with pytest.raises(ScdealError):
        ScDEAL(ScDealConfig(**TINY)).fit(adata, "Gefitinib", bulk=bulk, gene_ids="symbol")


def test_nan_in_target(bulk, target_cells):
    adata = target_cells.copy()
    adata.X[0, 0] = np.nan
    with pytest.raises(ScdealError, match="NaN"):
        ScDEAL(ScDealConfig(**TINY)).fit(adata, "Gefitinib", bulk=bulk, gene_ids="entrez")


def test_drug_with_too_few_labelled_lines(bulk, target_cells):
    model = ScDEAL(ScDealConfig(**TINY, min_per_class=500))
    with pytest.raises(ScdealError, match="at least 500 of each"):
        model.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")


def test_chunked_prediction_of_a_backed_file_matches_in_memory(fitted, target_cells, tmp_path):
    path = tmp_path / "cells.h5ad"
    target_cells.write_h5ad(path)
    streamed = fitted.predict_file(path, chunk_size=20, embedding=True)
    expected = fitted.predict(target_cells, copy=True)
    assert list(streamed.obs_names) == list(target_cells.obs_names)
    np.testing.assert_allclose(streamed.obs["sens_preds"], expected.obs["sens_preds"], atol=1e-6)
    np.testing.assert_allclose(streamed.obsm["X_scdeal"], expected.obsm["X_scdeal"], atol=1e-5)
    with pytest.raises(ScdealError, match="not an .h5ad file"):
        fitted.predict_file(tmp_path / "cells.csv")


def test_every_training_stage_runs_on_the_configured_threads():
    # scanpy/numba code between stages (preprocessing, neighbours) resets the OpenMP thread
    # count torch shares; each stage must set it back to num_threads.
    from scdeal.model._training import pretrain_extractor
    from scdeal.nn import FeatureExtractor

    config = ScDealConfig(**TINY, num_threads=1)
    x = torch.randn(40, 12)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pretrain_extractor(FeatureExtractor(12, [8], 4), x[:30], x[30:], config,
                           torch.Generator().manual_seed(0), stage="bulk_extractor")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
