"""The training budget: epochs of at most ``max_cells_per_epoch`` cells, at most
``max_validation_cells`` held out, at most ``max_genes`` genes; small targets unaffected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
import torch
from anndata import AnnData

from scdeal.errors import ScdealError
from scdeal.model import ScDEAL, ScDealConfig
from scdeal.model._fitting import held_out_size
from scdeal.model._training import EpochRows, batch_indices
from scdeal.model.prepare import most_variable_genes

TINY = dict(hidden_dims=(32,), latent_dim=8, predictor_dims=(8,), pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=16, n_models=1,
            seed=5)


def test_an_epoch_below_the_cap_is_every_row_with_the_same_random_draws():
    rows = EpochRows(50, 16, 64, torch.Generator().manual_seed(1))
    expected = batch_indices(50, 16, torch.Generator().manual_seed(1))
    got = rows.next_epoch()
    assert len(rows) == 50
    assert [b.tolist() for b in got] == [b.tolist() for b in expected]


def test_capped_epochs_visit_every_row_once_before_any_twice():
    n, cap = 1000, 128
    rows = EpochRows(n, 32, cap, torch.Generator().manual_seed(0))
    epochs = [torch.cat(rows.next_epoch()) for _ in range(20)]
    assert all(len(e) == cap for e in epochs)
    seen = torch.cat(epochs).tolist()
    assert sorted(seen[:n]) == list(range(n))  # first pass: each row exactly once
    assert sorted(seen[n:2 * n]) == list(range(n))  # the next pass too
    assert all(len(set(e.tolist())) == cap for e in epochs[:7])  # no repeats inside an epoch


def test_a_last_batch_of_one_row_joins_the_previous_one():
    rows = EpochRows(1000, 32, 97, torch.Generator().manual_seed(0))
    sizes = [len(b) for b in rows.next_epoch()]
    assert sum(sizes) == 97 and min(sizes) >= 2


def test_held_out_cells_are_capped():
    assert held_out_size(100, 0.2, 2048) == 20
    assert held_out_size(100_000, 0.2, 2048) == 2048
    assert held_out_size(5, 0.2, 2048) == 2


@pytest.mark.parametrize("field, value", [("max_genes", 1), ("max_genes", 2.5),
                                          ("max_cells_per_epoch", 1), ("max_cells_per_transfer_epoch", 1),
                                          ("max_validation_cells", 0)])
def test_budget_fields_are_validated(field, value):
    with pytest.raises(ScdealError, match=field):
        ScDealConfig(**{field: value})


def _fitted(bulk, cells, **config) -> ScDEAL:
    model = ScDEAL(ScDealConfig(**{**TINY, **config}), cache=False)
    return model.fit(cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")


def _predictions(bulk, cells, **config) -> np.ndarray:
    return _fitted(bulk, cells, **config).predict_proba(cells).to_numpy()


def _train_losses(model: ScDEAL, stage: str) -> list[float]:
    """The training loss of every epoch of ``stage`` in the first member (``shared``: the
    shared stages), whichever epoch early stopping kept: what the training did, not what
    it kept."""
    return [loss for h in model.training["history"] if h["stage"] == stage
            and h["model"] in (0, "shared") for loss in h["train_loss"]]


def test_the_cap_changes_nothing_below_it_and_bounds_training_above_it(bulk, target_cells):
    default = _fitted(bulk, target_cells)
    roomy = _fitted(bulk, target_cells, max_cells_per_epoch=len(target_cells))
    # 66 cells: below either cap, the same training and the same predictions
    np.testing.assert_array_equal(default.predict_proba(target_cells),
                                  roomy.predict_proba(target_cells))
    np.testing.assert_array_equal(_train_losses(default, "target_extractor"),
                                  _train_losses(roomy, "target_extractor"))
    capped = _fitted(bulk, target_cells, max_cells_per_epoch=16)
    # Above it every epoch is one batch of 16 cells instead of all 53 training cells: the
    # cells' pre-training differs from its first epoch on, on any machine.
    losses, capped_losses = (_train_losses(m, "target_extractor") for m in (default, capped))
    assert losses and capped_losses and losses[0] != capped_losses[0]


def test_max_genes_keeps_the_most_variable_genes_over_the_lines_for_scaled_cells(
        bulk, target_cells):
    model = ScDEAL(ScDealConfig(**TINY, max_genes=300), cache=False)
    model.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")
    selection = model.training["gene_selection"]
    assert len(model.target_genes) == 300 == selection["kept"] < selection["n_shared"]
    assert "GDSC" in selection["how"]
    # The kept genes out-vary every dropped one over the GDSC lines.
    full = ScDEAL(ScDealConfig(**TINY), cache=False)
    full.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")
    assert full.training["gene_selection"] is None
    from scdeal.model.prepare import bulk_expression_on_symbols

    expr, _ = bulk_expression_on_symbols(bulk)
    variance = expr[full.target_genes].var()
    kept = variance[model.target_genes]
    dropped = variance.drop(model.target_genes)
    assert kept.min() >= dropped.max()
    assert model.predict_proba(target_cells).notna().all()


def test_max_genes_on_counts_is_scanpys_highly_variable_genes():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(400)]
    rates = rng.lognormal(0, 1, 400)
    rates[:50] *= rng.lognormal(0, 1.5, (1, 50)).repeat(1, 0)[0]
    counts = rng.poisson(rates * rng.lognormal(0, 0.5, (300, 1))).astype(np.float32)
    cells = AnnData(counts, var=pd.DataFrame(index=genes))
    sc.pp.normalize_total(cells, target_sum=1e4)
    sc.pp.log1p(cells)
    cells.uns["scdeal_preprocess"] = {"input_kind": "counts"}
    subset = genes[::2]  # the genes shared with GDSC, say
    kept, how = most_variable_genes(cells, subset, 60, bulk_expr=None)
    expected = sc.pp.highly_variable_genes(cells[:, subset].copy(), n_top_genes=60,
                                           flavor="seurat", inplace=False)
    assert kept == [g for g, hv in zip(subset, expected["highly_variable"], strict=True) if hv]
    assert len(kept) == 60 and "highly variable" in how


def test_the_transfer_epoch_cap_changes_nothing_below_it(bulk, target_cells):
    default = _fitted(bulk, target_cells)
    roomy = _fitted(bulk, target_cells, max_cells_per_transfer_epoch=10_000)
    # 66 cells: below either cap, the same transfer and the same predictions
    np.testing.assert_array_equal(default.predict_proba(target_cells),
                                  roomy.predict_proba(target_cells))
    np.testing.assert_array_equal(_train_losses(default, "transfer"),  # NaN: epoch 0
                                  _train_losses(roomy, "transfer"))
    # Above it a transfer epoch is one batch of 16 cells: its training loss differs from the
    # first epoch on, whichever epoch early stopping then keeps (the predictions differ only
    # when it keeps a transfer epoch, which depends on the machine's rounding).
    capped = _fitted(bulk, target_cells, max_cells_per_transfer_epoch=16)
    losses = [x for x in _train_losses(default, "transfer") if np.isfinite(x)]
    capped_losses = [x for x in _train_losses(capped, "transfer") if np.isfinite(x)]
    assert losses and capped_losses and losses[0] != capped_losses[0]


def test_cells_held_densely_train_exactly_as_cells_standardised_per_batch(
        bulk, target_cells, monkeypatch):
    from scdeal.model import prepare

    sparse = target_cells.copy()
    sparse.X = sp.csr_matrix(np.where(np.abs(sparse.X) < 0.5, 0, sparse.X))
    held = _predictions(bulk, sparse, max_cells_per_epoch=16)
    monkeypatch.setattr(prepare, "HELD_BYTES", 0)  # nothing is held: batch by batch
    per_batch = _predictions(bulk, sparse, max_cells_per_epoch=16)
    np.testing.assert_array_equal(held, per_batch)
