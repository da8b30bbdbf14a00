"""Label-free reliability: the diagnostics, per-cell spread, the warning, save/load, the CLI."""

from __future__ import annotations

import itertools
import json
import logging

import anndata
import numpy as np
import pytest

from scdeal.model import ScDEAL, ScDealConfig
from scdeal.model.predictions import prediction_columns
from scdeal.model.reliability import (
    RULE,
    ReliabilityRule,
    reliability_diagnostics,
    uncertain_cells,
)

TINY = dict(hidden_dims=(32,), latent_dim=8, predictor_dims=(8,), pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=64)


# ------------------------------------------------------------------------------------------
# the diagnostics on constructed member predictions


def test_agreement_is_the_mean_pairwise_pearson_correlation():
    rng = np.random.default_rng(1)
    post = rng.random((4, 50))
    pre = rng.random((4, 50))
    d = reliability_diagnostics(post, pre, [0.7, 0.8, 0.9, np.nan])
    pairs = [np.corrcoef(post[i], post[j])[0, 1] for i, j in itertools.combinations(range(4), 2)]
    assert d["member_agreement"] == pytest.approx(np.mean(pairs))
    assert d["direction_agreement"] == pytest.approx(np.mean(np.array(pairs) > 0))
    pre_pairs = [np.corrcoef(pre[i], pre[j])[0, 1] for i, j in itertools.combinations(range(4), 2)]
    assert d["member_agreement_pretransfer"] == pytest.approx(np.mean(pre_pairs))
    assert d["bulk_test_auroc"] == pytest.approx(0.8)  # NaN members are left out
    assert d["transfer_consistency"] == pytest.approx(
        np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(post, pre, strict=True)]))


def test_members_pointing_opposite_ways_are_unreliable():
    signal = np.linspace(0, 1, 60)
    post = np.stack([signal, signal, 1 - signal, 1 - signal])
    d = reliability_diagnostics(post, post, [0.9] * 4)
    assert d["member_agreement"] == pytest.approx(-1 / 3)
    assert d["direction_agreement"] == pytest.approx(2 / 6)
    assert d["member_consensus"] == pytest.approx(-1.0)  # each member against the rest
    assert d["reliable"] is False and "disagree" in d["reason"]


def test_consensus_tolerates_one_dissenting_member():
    signal = np.linspace(0, 1, 60)
    post = np.stack([signal] * 4 + [1 - signal])
    d = reliability_diagnostics(post, post, [0.9] * 5)
    assert d["member_agreement"] == pytest.approx((6 - 4) / 10)  # 6 pairs +1, 4 pairs -1
    assert d["member_consensus"] == pytest.approx(1.0)  # the median member agrees with the rest
    by_consensus = ReliabilityRule(statistic="member_consensus", min_agreement=0.5,
                                   min_direction_agreement=0.0)
    assert reliability_diagnostics(post, post, [0.9] * 5, rule=by_consensus)["reliable"] is True
    # The package's rule calls no ensemble reliable whose members point both ways.
    assert "members point both ways" in d["reason"] and d["reliable"] is False
    with pytest.raises(ValueError, match="statistic"):
        ReliabilityRule(statistic="median")


def test_agreeing_members_with_a_weak_bulk_model_are_unreliable():
    signal = np.linspace(0, 1, 60)
    post = np.stack([signal] * 3)
    assert reliability_diagnostics(post, post, [0.9] * 3)["reliable"] is True
    weak = reliability_diagnostics(post, post, [RULE.min_bulk_test_auroc - 0.05] * 3)
    assert weak["reliable"] is False and "weak bulk model" in weak["reason"]


def test_one_member_gives_no_verdict_and_a_reason():
    d = reliability_diagnostics(np.random.default_rng(0).random((1, 30)),
                                np.random.default_rng(1).random((1, 30)), [0.8])
    assert d["reliable"] is None and "one member" in d["reason"]
    assert d["member_agreement"] is None and d["bulk_test_auroc"] == pytest.approx(0.8)


def test_a_constant_member_counts_as_no_agreement_not_a_crash():
    post = np.stack([np.full(20, 0.9), np.linspace(0, 1, 20)])
    d = reliability_diagnostics(post, post, [0.8, 0.8])
    assert d["member_agreement"] == 0.0 and d["reliable"] is False


def test_rule_thresholds_are_used():
    signal = np.linspace(0, 1, 40)
    noisy = np.stack([signal + 0.4 * np.random.default_rng(i).random(40) for i in range(3)])
    d = reliability_diagnostics(noisy, noisy, [0.8] * 3)
    strict = ReliabilityRule("member_agreement", min_agreement=d["member_agreement"] + 0.01)
    loose = ReliabilityRule("member_agreement", min_agreement=d["member_agreement"] - 0.01)
    assert reliability_diagnostics(noisy, noisy, [0.8] * 3, rule=strict)["reliable"] is False
    assert reliability_diagnostics(noisy, noisy, [0.8] * 3, rule=loose)["reliable"] is True


def test_prediction_columns_mean_sd_and_uncertain_cells():
    post = np.array([[0.9, 0.2, 0.6, np.nan], [0.7, 0.4, 0.3, np.nan], [0.8, 0.3, 0.6, np.nan]])
    cols = prediction_columns(post, post[::-1])
    np.testing.assert_allclose(cols["sens_preds"][:3], post[:, :3].mean(0), atol=1e-6)
    np.testing.assert_allclose(cols["sens_preds_sd"][:3], post[:, :3].std(0), atol=1e-6)
    assert cols["sens_uncertain"].tolist() == [False, False, True, False]
    assert np.isnan(cols["sens_preds"][3]) and cols["sens_label"].isna()[3]
    single = prediction_columns(post[:1, :3])
    assert np.isnan(single["sens_preds_sd"]).all() and not single["sens_uncertain"].any()
    assert uncertain_cells(np.array([0.45]), np.array([0.1])).tolist() == [True]


# ------------------------------------------------------------------------------------------
# a real fit


@pytest.fixture(scope="module")
def ensemble(bulk, target_cells):
    model = ScDEAL(ScDealConfig(**TINY, n_models=3, seed=11))
    return model.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")


def _member_probs(model, target_cells):
    import torch

    X, _ = model.target_matrix(target_cells)
    x = torch.as_tensor(X)
    return (np.stack([m.target_net.predict_proba(x).numpy() for m in model.members]),
            np.stack([m.pretransfer_net.predict_proba(x).numpy() for m in model.members]))


def test_fit_records_diagnostics_of_its_members(ensemble, target_cells):
    rel = ensemble.reliability
    post, pre = _member_probs(ensemble, target_cells)
    pairs = [np.corrcoef(post[i], post[j])[0, 1] for i, j in itertools.combinations(range(3), 2)]
    assert rel["n_members"] == 3
    assert rel["member_agreement"] == pytest.approx(np.mean(pairs), abs=1e-5)
    bulk_auroc = [m["auroc"] for m in ensemble.training["bulk_test_metrics_per_model"]]
    assert rel["bulk_test_auroc"] == pytest.approx(np.mean(bulk_auroc))
    expected = (rel[RULE.statistic] >= RULE.min_agreement
                and rel["bulk_test_auroc"] >= RULE.min_bulk_test_auroc)
    assert rel["reliable"] is expected
    assert ensemble.summary()["reliability"]["reliable"] is expected


def test_predict_writes_the_members_spread(ensemble, target_cells, tmp_path):
    out = ensemble.predict(target_cells, copy=True)
    post, pre = _member_probs(ensemble, target_cells)
    np.testing.assert_allclose(out.obs["sens_preds"], post.mean(0), atol=1e-6)
    np.testing.assert_allclose(out.obs["sens_preds_sd"], post.std(0), atol=1e-6)
    np.testing.assert_allclose(out.obs["sens_preds_pret"], pre.mean(0), atol=1e-6)
    assert (out.obs["sens_uncertain"] == (np.abs(post.mean(0) - 0.5) < post.std(0))).all()
    assert out.uns["scdeal"]["reliability"]["reason"] == ensemble.reliability["reason"]
    # after save/load, and when streamed from a file
    ensemble.save(tmp_path / "m")
    loaded = ScDEAL.load(tmp_path / "m")
    assert loaded.reliability == json.loads(json.dumps(ensemble.reliability))
    again = loaded.predict(target_cells, copy=True)
    np.testing.assert_allclose(again.obs["sens_preds_sd"], out.obs["sens_preds_sd"], atol=1e-6)
    target_cells.write_h5ad(tmp_path / "target_cells.h5ad")
    streamed = loaded.predict_file(tmp_path / "target_cells.h5ad", chunk_size=25)
    np.testing.assert_allclose(streamed.obs["sens_preds_sd"], out.obs["sens_preds_sd"],
                               atol=1e-6)
    assert (streamed.obs["sens_uncertain"] == out.obs["sens_uncertain"]).all()


def test_a_model_saved_before_diagnostics_loads_and_says_so(ensemble, target_cells, tmp_path):
    ensemble.save(tmp_path / "old")
    (tmp_path / "old" / "reliability.json").unlink()
    loaded = ScDEAL.load(tmp_path / "old")
    assert loaded.reliability is None
    info = loaded.summary()["reliability"]
    assert info["reliable"] is None and "saved by a scdeal version" in info["reason"]
    out = loaded.predict(target_cells, copy=True)
    assert "sens_preds_sd" in out.obs  # the members are there, so the spread is too


def test_an_unreliable_fit_warns_in_the_api(bulk, target_cells, monkeypatch, caplog):
    from functools import partial

    import scdeal.model._model as model_module

    # A rule no fit can pass: the warning path, not the thresholds, is under test here.
    impossible = ReliabilityRule(min_agreement=1.5)
    monkeypatch.setattr(model_module, "reliability_diagnostics",
                        partial(reliability_diagnostics, rule=impossible))
    model = ScDEAL(ScDealConfig(**TINY, n_models=2, seed=2))
    with caplog.at_level(logging.WARNING, logger="scdeal"):
        model.fit(target_cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez")
    assert model.reliability["reliable"] is False
    warnings = [r for r in caplog.records if "NOT reliable" in r.getMessage()]
    assert len(warnings) == 1 and "members disagree" in warnings[0].getMessage()


def test_cli_run_reports_reliability_and_warns_once(target_file, gdsc_data_dir, tmp_path,
                                                    monkeypatch, capsys):
    from functools import partial

    import scdeal.model._model as model_module
    from scdeal.cli import main

    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    monkeypatch.setattr(model_module, "reliability_diagnostics",
                        partial(reliability_diagnostics,
                                rule=ReliabilityRule(min_agreement=1.5)))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "hidden_dims": [32], "predictor_dims": [8],
                                  "n_models": 2}))
    target = target_file
    out = tmp_path / "run"
    # logging.basicConfig does nothing once the root logger has handlers (pytest's); give the
    # CLI a stderr handler of its own to see what a user sees.
    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    try:
        code = main(["--quiet", "run", "--drug", "Gefitinib", "--target", str(target),
                     "--gene-ids", "entrez", "--config", str(config), "--out", str(out)])
    finally:
        logging.getLogger().removeHandler(handler)
    captured = capsys.readouterr()
    assert code == 0
    lines = [line for line in captured.err.splitlines() if "NOT reliable" in line]
    assert len(lines) == 1 and "try more members" in lines[0]
    run = json.loads((out / "run.json").read_text())
    assert run["reliability"]["reliable"] is False
    assert {"member_agreement", "bulk_test_auroc", "direction_agreement"} <= set(run["reliability"])
    pred = anndata.read_h5ad(out / "predictions.h5ad")
    assert {"sens_preds_sd", "sens_uncertain"} <= set(pred.obs.columns)
    # the report puts the verdict first
    from scdeal.workflows import build_report

    page = build_report(out, draw_missing=False).read_text()
    assert page.index("NOT RELIABLE") < page.index("<h2>Run</h2>")


def test_a_split_ensemble_is_caught_by_a_direction_threshold():
    import numpy as np

    from scdeal.model.reliability import ReliabilityRule, reliability_diagnostics

    rng = np.random.default_rng(0)
    signal = rng.random(300)
    # Three members agree; two point the other way, weakly: the consensus (a median over
    # members) stays high while 6 of the 10 member pairs disagree in direction.
    post = np.stack([signal + 0.05 * rng.random(300) for _ in range(3)]
                    + [-0.3 * signal + 0.05 * rng.random(300) for _ in range(2)])
    old = reliability_diagnostics(post, post, [0.8] * 5,
                                  rule=ReliabilityRule("member_consensus", 0.7, 0.6, 0.0))
    assert old["member_consensus"] >= 0.7 and old["reliable"] is True
    assert old["direction_agreement"] == 0.4
    new = reliability_diagnostics(post, post, [0.8] * 5, rule=ReliabilityRule(
        "member_consensus", 0.7, 0.6, min_direction_agreement=0.8))
    assert new["reliable"] is False and "members point both ways" in new["reason"]
    assert "direction_agreement >= 0.8" in new["rule"]
