"""Integrated gradients of a tiny trained model: completeness, both outputs, baselines,
batching, the h5ad file, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scdeal.data import load_gdsc
from scdeal.errors import ScdealError
from scdeal.model import ScDEAL, ScDealConfig
from scdeal.tl import AttributionConfig, integrated_gradients, write_attributions

# Two members, so the ensemble path (averaged probabilities) is what gets attributed.
TINY = dict(hidden_dims=(32,), latent_dim=8, predictor_dims=(8,), pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=64, n_models=2)
TOLERANCE = 0.02  # absolute, on the probability scale (AttributionConfig's default)


@pytest.fixture(scope="module")
def model(gdsc_data_dir, target_cells):
    mp = pytest.MonkeyPatch()
    mp.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    try:
        fitted = ScDEAL(ScDealConfig(**TINY, seed=11))
        fitted.fit(target_cells.copy(), "Gefitinib", bulk=load_gdsc(), gene_ids="entrez")
    finally:
        mp.undo()
    fitted.predict(target_cells, label_key="response")
    return fitted


@pytest.fixture(scope="module")
def attr(model, target_cells):
    return integrated_gradients(target_cells, model, obs=target_cells.obs)


def _probabilities(model, X: np.ndarray) -> np.ndarray:
    """Softmax outputs computed directly from the network, independent of the IG code."""
    net = model.target_net.eval()
    with torch.no_grad():
        return torch.softmax(net(torch.as_tensor(X, dtype=torch.float32)), dim=1).double().numpy()


def test_completeness_both_outputs(model, target_cells, attr):
    X, names = model.target_matrix(target_cells)
    base = ((0 - model.target_scaler.mean) / model.target_scaler.scale).astype(np.float32)
    fx, fb = _probabilities(model, X), _probabilities(model, base[None, :])[0]
    assert list(attr.obs_names) == list(names)
    for layer, output in (("ig_sensitive", 1), ("ig_resistant", 0)):
        total = np.asarray(attr.layers[layer], dtype=np.float64).sum(axis=1)
        error = np.abs(total - (fx[:, output] - fb[output]))
        assert error.max() < TOLERANCE, (layer, error.max())
    # the recorded errors are the same quantity
    recorded = attr.obs["ig_delta_sensitive"].to_numpy()
    np.testing.assert_allclose(recorded, attr.layers["ig_sensitive"].sum(1) - (fx[:, 1] - fb[1]),
                               atol=1e-5)
    info = attr.uns["integrated_gradients"]
    assert info["passed"] and info["max_abs_delta"] < TOLERANCE and info["n_steps"] == 50
    # the attributions are not trivially zero: outputs do move away from the baseline
    assert np.abs(fx[:, 1] - fb[1]).max() > 0.05


def test_resistant_output_is_the_negated_sensitive_output(attr):
    # p_resistant = 1 - p_sensitive for a two-class softmax, so IG attributions are negatives.
    np.testing.assert_allclose(attr.layers["ig_resistant"], -attr.layers["ig_sensitive"],
                               atol=1e-6)
    np.testing.assert_array_equal(attr.X, attr.layers["ig_sensitive"])


def test_input_layer_is_what_the_network_sees(model, target_cells, attr):
    X, _ = model.target_matrix(target_cells)
    np.testing.assert_array_equal(attr.layers["input"], X)
    assert list(attr.var_names) == list(model.target_genes)
    assert attr.obs["sens_preds"].equals(target_cells.obs["sens_preds"].reindex(attr.obs_names))


def test_mean_cell_baseline_and_batching(model, target_cells, attr):
    mean_cell = integrated_gradients(target_cells, model, AttributionConfig(baseline="mean_cell"))
    np.testing.assert_array_equal(mean_cell.var["baseline"], 0.0)
    fx = _probabilities(model, model.target_matrix(target_cells)[0])[:, 1]
    f0 = _probabilities(model, np.zeros((1, len(model.target_genes)), np.float32))[0, 1]
    total = mean_cell.layers["ig_sensitive"].sum(1)
    assert np.abs(total - (fx - f0)).max() < TOLERANCE
    # batch size only changes how target_cells are grouped, not the result
    rebatched = integrated_gradients(target_cells, model, AttributionConfig(batch_size=20))
    np.testing.assert_allclose(rebatched.layers["ig_sensitive"], attr.layers["ig_sensitive"],
                               atol=1e-6)


def test_h5ad_file_opens_with_scanpy(attr, tmp_path):
    import scanpy as sc

    path = tmp_path / "attr_integrated_gradient.h5ad"
    write_attributions(attr, path)
    back = sc.read_h5ad(path)
    assert back.shape == attr.shape
    assert {"ig_sensitive", "ig_resistant", "input"} <= set(back.layers)
    np.testing.assert_array_equal(back.layers["ig_resistant"], attr.layers["ig_resistant"])
    assert "sens_label" in back.obs and "response" in back.obs


def test_bad_settings_and_unfitted_model(target_cells):
    with pytest.raises(ScdealError, match="n_steps"):
        AttributionConfig(n_steps=1)
    with pytest.raises(ScdealError, match="baseline must be one of"):
        AttributionConfig(baseline="noise")
    with pytest.raises(ScdealError, match="method must be one of"):
        AttributionConfig(method="simpson")
    with pytest.raises(ScdealError, match="trained model"):
        integrated_gradients(target_cells, ScDEAL(ScDealConfig(**TINY)))


def test_adata_first_writes_the_summary_and_model_first_is_deprecated():
    """The call forms, on a stand-in for a fitted model (fast; no GDSC)."""
    import anndata

    from scdeal.tl._examples import tiny_model

    rng = np.random.default_rng(0)
    cells = anndata.AnnData(rng.poisson(1, (30, 12)).astype("float32"))
    model, config = tiny_model(cells), AttributionConfig(n_steps=8)
    new = integrated_gradients(cells, model, config, key_added="ig")
    assert cells.uns["ig"]["n_steps"] == 8 and new.uns["ig"] == cells.uns["ig"]
    before = set(cells.uns)
    with pytest.warns(FutureWarning, match=r"integrated_gradients\(model, adata.*deprecated"
                                           r".*scdeal 0.3.*integrated_gradients\(adata, model"):
        old = integrated_gradients(model, cells, config, key_added="ig_old")
    assert set(cells.uns) == before  # the old form wrote nothing into adata, as before
    for layer in ("ig_sensitive", "ig_resistant", "input"):
        np.testing.assert_array_equal(old.layers[layer], new.layers[layer])
