"""The joint multi-drug model (:class:`scdeal.model.JointScDEAL`) and the joint screen
(``scdeal screen --strategy joint``): the label matrix and its split, fit, predict,
save/load, members trained elsewhere, the screen's outputs, resume, failure and
``scdeal predict`` on the saved model."""

from __future__ import annotations

import shutil

import anndata
import numpy as np
import pandas as pd
import pytest

from scdeal.cli import main
from scdeal.errors import DrugError, ScdealError
from scdeal.workflows.drug_screen import DRUG_COLUMNS

TINY = dict(hidden_dims=(32,), latent_dim=8, predictor_dims=(8,), pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=64, n_models=2)
DRUGS = ["Gefitinib", "Erlotinib", "Afatinib"]
NUMBERS = ["reliable", "member_agreement", "member_consensus", "bulk_test_auroc",
           "fraction_sensitive", "auroc", "ap", "n_cells"]


# ------------------------------------------------------------------------------ labels


def test_lines_are_split_whole_and_each_drug_is_balanced():
    from scdeal.model import ScDealConfig
    from scdeal.model.joint_labels import JointLabels, joint_split
    from scdeal.model.prepare import Standardizer

    rng = np.random.default_rng(0)
    n, drugs = 200, ["A", "B", "C"]
    y = rng.choice([0.0, 1.0, np.nan], size=(n, 3), p=[0.5, 0.2, 0.3]).astype(np.float32)
    X = pd.DataFrame(rng.normal(size=(n, 5)).astype(np.float32))
    labels = JointLabels(X, pd.DataFrame(y, columns=drugs), {}, {})
    split = joint_split(labels, Standardizer.fit(X.to_numpy()), ScDealConfig(), 3, "cpu")
    rows = split.positions
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(n))
    assert not set(rows["test"]) & (set(rows["train"]) | set(rows["val"]))
    for name in ("train", "val", "test"):
        targets = split.targets[name]
        weight, labels_here = targets.weight.numpy(), y[rows[name]]
        # No weight where a line is unlabelled for a drug: its label is never trained on.
        assert (weight[np.isnan(labels_here)] == 0).all()
        for d in range(3):  # each drug's two classes weigh the same
            sens = weight[labels_here[:, d] == 1, d].sum()
            res = weight[labels_here[:, d] == 0, d].sum()
            assert sens == pytest.approx(res, rel=1e-5)
    # The test lines' labels are the ones scored, and they are nowhere in training.
    np.testing.assert_array_equal(split.y_test, y[rows["test"]])


def test_a_drug_without_enough_lines_is_named(bulk):
    from scdeal.model import ScDealConfig
    from scdeal.model.joint_labels import joint_labels
    from scdeal.model.prepare import bulk_expression_on_symbols

    expr, _ = bulk_expression_on_symbols(bulk)
    labels = joint_labels(bulk, ["Gefitinib", "gefitinib", "Erlotinib"], ScDealConfig(), expr)
    assert labels.drugs == ["Gefitinib", "Erlotinib"]  # named twice, counted once
    assert labels.y.notna().any(axis=1).all()  # every line labelled for some drug
    with pytest.raises(DrugError, match="cannot be trained.*at least 5000"):
        joint_labels(bulk, ["Gefitinib"], ScDealConfig(min_per_class=5000), expr)


# ------------------------------------------------------------------------------ the model


@pytest.fixture(scope="module")
def cells(demo_cells):
    return demo_cells


@pytest.fixture(scope="module")
def joint(cells):
    from scdeal.model import JointScDEAL

    adata, bulk = cells
    return JointScDEAL(TINY, cache=False).fit(adata, DRUGS, bulk=bulk, gene_ids="symbol")


def test_the_joint_model_predicts_every_drug(joint, cells):
    adata = cells[0].copy()
    joint.predict(adata)
    p, sd = adata.obsm["scdeal_screen"], adata.obsm["scdeal_screen_sd"]
    assert list(p.columns) == DRUGS and p.shape == (adata.n_obs, 3)
    assert ((p >= 0) & (p <= 1)).all().all() and (sd >= 0).all().all()
    table = joint.reliability_table()
    assert table.drug.tolist() == DRUGS and table.reliable.isin([True, False]).all()
    # Each drug's verdict is the rule applied to that drug's output alone.
    post, _ = joint.predict_members(cells[0])
    assert np.allclose(p.to_numpy(), post.mean(axis=0), atol=1e-6)
    assert set(joint.training["bulk_test_auroc"]) == set(DRUGS)
    # The head is one linear output per drug by default (joint_head_dims=()), whatever the
    # single-drug predictor's hidden layers (predictor_dims=(8,) here).
    head = joint.members[0].target_net.predictor
    assert len(head.hidden) == 0 and head.out.out_features == 3
    assert np.array(joint.training["bulk_test_auroc_per_model"]).shape == (2, 3)


def test_a_saved_joint_model_predicts_the_same_and_is_not_a_single_drug_model(joint, cells,
                                                                                tmp_path):
    from scdeal import ScDEAL
    from scdeal.model import JointScDEAL, load_model

    joint.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, JointScDEAL) and loaded.drugs == DRUGS
    pd.testing.assert_frame_equal(loaded.predict_proba(cells[0]), joint.predict_proba(cells[0]),
                                  atol=1e-6)
    pd.testing.assert_frame_equal(loaded.reliability_table(), joint.reliability_table())
    with pytest.raises(ScdealError, match="holds a joint model"):
        ScDEAL.load(tmp_path / "model")


def test_members_trained_one_by_one_give_the_threaded_fit(joint, cells):
    # What a Dask worker does per member (setup, then train_member) gives the numbers of
    # the fit that trains the members in threads here.
    from scdeal.model import JointScDEAL

    adata, bulk = cells
    model = JointScDEAL(TINY, cache=False)
    setup = model.setup(adata, DRUGS, bulk=bulk, gene_ids="symbol")
    trained = [model.train_member(setup, i) for i in range(TINY["n_models"])]
    model.fit(adata, DRUGS, bulk=bulk, gene_ids="symbol", trained=trained)
    pd.testing.assert_frame_equal(model.predict_proba(adata), joint.predict_proba(adata),
                                  atol=1e-6)
    with pytest.raises(ScdealError, match="1 trained members given"):
        model.fit(adata, DRUGS, bulk=bulk, gene_ids="symbol", trained=trained[:1])


def test_the_joint_transfer_variants_train_what_they_say(cells):
    from scdeal.model import JointScDEAL

    adata, bulk = cells
    # "summed": each member's MMD weight is the configured one over the number of drugs; the
    # model's own configuration is left as given, so a second fit divides the same number.
    summed = JointScDEAL(TINY, cache=False, joint_transfer="summed", mmd_weight=0.6)
    summed.fit(adata, DRUGS, bulk=bulk, gene_ids="symbol")
    assert summed.member_config(3).mmd_weight == pytest.approx(0.2)
    assert summed.config.mmd_weight == 0.6 and summed.member_config(3).seed == 3
    assert any(h["stage"] == "transfer" for h in summed.training["history"])
    clusters = JointScDEAL(TINY, cache=False, joint_transfer="clusters")
    assert clusters.member_config(0).mmd_weight == 0 and clusters.config.mmd_weight == 1.0
    # "none": no member has a transfer stage and the cells are predicted as before it.
    none = JointScDEAL(TINY, cache=False, joint_transfer="none")
    none.fit(adata, DRUGS, bulk=bulk, gene_ids="symbol")
    assert not any(h["stage"] == "transfer" for h in none.training["history"])
    rows, _ = none.target_rows(adata)
    post, pre, _ = none._predict_members(rows)
    np.testing.assert_allclose(post, pre, atol=1e-6)


# ------------------------------------------------------------------------------ the screen


@pytest.fixture(scope="module")
def data_env(gdsc_data_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    yield gdsc_data_dir
    mp.undo()


@pytest.fixture(scope="module")
def cells_file(cells, tmp_path_factory):
    path = tmp_path_factory.mktemp("joint_cells") / "cells.h5ad"
    cells[0].write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    import json

    path = tmp_path_factory.mktemp("joint_config") / "tiny.json"
    path.write_text(json.dumps({k: list(v) if isinstance(v, tuple) else v
                                for k, v in TINY.items()}))
    return path


SCREENED = ["Gefitinib", "Erlotinib", "PLX-4720"]


def _joint_screen(cells_file, config_file, out, *extra) -> int:
    # Two blocks: the two EGFR inhibitors together (a JointScDEAL), PLX-4720 alone (ScDEAL).
    return main(["screen", "--strategy", "joint", "--blocks", "2", "--drugs",
                 "Gefitinib,Erlotinib,PLX4720,NoSuchDrug", "--target", str(cells_file),
                 "--label-key", "sensitive", "--gene-ids", "symbol", "--config",
                 str(config_file), "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def joint_screen(data_env, cells_file, config_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("joint_screen") / "screen"
    assert _joint_screen(cells_file, config_file, out) == 0
    return out


def _no_training(*args, **kwargs):
    raise AssertionError("a saved fit should have been reused")


def test_a_joint_screen_writes_the_outputs_of_a_screen(joint_screen):
    import json

    table = pd.read_csv(joint_screen / "drugs.csv")
    assert list(table.columns) == DRUG_COLUMNS
    assert table.status.tolist() == ["ok", "ok", "ok", "unknown"]
    ok = table[table.status == "ok"]
    assert ok.auroc.between(0, 1).all() and ok.bulk_test_auroc.between(0, 1).all()
    assert ok.reliable.isin([True, False]).all()
    screened = anndata.read_h5ad(joint_screen / "screen.h5ad")
    assert list(screened.obsm["scdeal_screen"].columns) == SCREENED
    assert screened.uns["scdeal_screen"]["strategy"] == "joint"
    assert (joint_screen / "groups.csv").is_file() and (joint_screen / "heatmap.png").is_file()
    meta = json.loads((joint_screen / "model" / "config.json").read_text())
    assert meta["kind"] == "screen"
    assert meta["blocks"] == [["Gefitinib", "Erlotinib"], ["PLX-4720"]]
    kinds = [json.loads((joint_screen / "model" / "blocks" / b / "config.json").read_text())
             ["kind"] for b in ("000", "001")]
    assert kinds == ["joint", "single"]
    assert not (joint_screen / "parts" / "blocks").exists()  # kept only until the model is


def test_the_saved_joint_model_predicts_new_cells_for_every_drug(joint_screen, cells_file,
                                                                 tmp_path, capsys):
    out = tmp_path / "predicted.h5ad"
    assert main(["predict", "--model", str(joint_screen / "model"), "--target",
                 str(cells_file), "--gene-ids", "symbol", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "screen model of 2 fits, 3 drugs" in line
    predicted = anndata.read_h5ad(out).obsm["scdeal_screen"]
    screened = anndata.read_h5ad(joint_screen / "screen.h5ad").obsm["scdeal_screen"]
    pd.testing.assert_frame_equal(predicted, screened, atol=1e-5, check_dtype=False)
    reliability = pd.read_json(__import__("io").StringIO(
        anndata.read_h5ad(out).uns["scdeal_screen_model"]["reliability_json"]))
    assert reliability.drug.tolist() == SCREENED
    table = pd.read_csv(joint_screen / "drugs.csv").set_index("drug").loc[SCREENED]
    assert reliability.reliable.tolist() == table.reliable.tolist()


def test_a_joint_screen_resumes_from_its_model_and_refuses_other_settings(
        joint_screen, cells_file, config_file, data_env, tmp_path, monkeypatch):
    from scdeal.model import JointScDEAL, ScDEAL

    out = tmp_path / "resumed"
    shutil.copytree(joint_screen, out)
    (out / "drugs.csv").unlink()
    monkeypatch.setattr(JointScDEAL, "fit", _no_training)
    monkeypatch.setattr(ScDEAL, "fit", _no_training)
    assert _joint_screen(cells_file, config_file, out) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "drugs.csv")[NUMBERS],
                                  pd.read_csv(joint_screen / "drugs.csv")[NUMBERS])
    # A per-drug screen into the joint screen's folder is refused, not mixed.
    assert main(["screen", "--strategy", "per-drug", "--drugs", "Gefitinib", "--target",
                 str(cells_file), "--gene-ids", "symbol", "--config", str(config_file), "--out",
                 str(out), "--quiet"]) == 1


def test_a_failed_block_fails_its_drugs_keeps_the_others_and_is_tried_again(
        joint_screen, cells_file, config_file, data_env, tmp_path, monkeypatch):
    from scdeal.model import JointScDEAL, ScDEAL

    out = tmp_path / "failing"
    original = JointScDEAL.fit

    def lost(*args, **kwargs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(JointScDEAL, "fit", lost)
    assert _joint_screen(cells_file, config_file, out) == 0
    table = pd.read_csv(out / "drugs.csv")
    assert table.status.tolist() == ["failed", "failed", "ok", "unknown"]
    assert table.reason[0] == "joint fit of 2 drug(s): RuntimeError: worker lost"
    assert not (out / "model").exists()  # the model is saved whole or not at all
    # Run again: only the failed block is fitted (PLX-4720's finished fit is reused).
    monkeypatch.setattr(JointScDEAL, "fit", original)
    monkeypatch.setattr(ScDEAL, "fit", _no_training)
    assert _joint_screen(cells_file, config_file, out) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "drugs.csv")[NUMBERS],
                                  pd.read_csv(joint_screen / "drugs.csv")[NUMBERS])
    assert (out / "model" / "config.json").is_file()


def test_a_joint_screen_on_a_dask_cluster_gives_the_local_numbers(
        joint_screen, cells_file, config_file, data_env, tmp_path):
    # The blocks are Dask tasks there; each holds its worker process (one worker of two
    # threads runs both blocks, one at a time).
    from test_screen import _cluster

    out = tmp_path / "remote"
    with _cluster(1, 2) as address:
        assert _joint_screen(cells_file, config_file, out, "--scheduler", address) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "drugs.csv")[NUMBERS],
                                  pd.read_csv(joint_screen / "drugs.csv")[NUMBERS], rtol=1e-5)


def test_blocks_are_for_the_joint_strategy(data_env, cells_file, config_file, tmp_path,
                                           capsys):
    assert main(["screen", "--strategy", "per-drug", "--blocks", "3", "--drugs", "Gefitinib",
                 "--target", str(cells_file), "--gene-ids", "symbol", "--config",
                 str(config_file), "--out", str(tmp_path / "x"), "--quiet"]) == 1
    assert "--blocks groups the drugs of --strategy joint" in capsys.readouterr().err
    assert main(["screen", "--blocks", "0", "--drugs", "Gefitinib", "--target",
                 str(cells_file), "--gene-ids", "symbol", "--out", str(tmp_path / "y"),
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "joint_blocks" in err[0] and "whole number >= 1" in err[0]
    assert not (tmp_path / "y").exists()


def test_an_unknown_strategy_is_one_clear_error(data_env, cells_file, capsys):
    from scdeal.workflows.drug_screen import screen

    with pytest.raises(ScdealError, match="unknown screen strategy 'both'"):
        screen(anndata.read_h5ad(cells_file), ["Gefitinib"], strategy="both")


def test_all_drugs_of_both_releases_are_each_screened_once(bulk):
    from scdeal.model import ScDealConfig
    from scdeal.workflows.drug_screen import resolve_drugs

    both = [row["drug"] for row in resolve_drugs(bulk, "all", ScDealConfig(release="auto"))]
    gdsc2 = [row["drug"] for row in resolve_drugs(bulk, "all", ScDealConfig(release="GDSC2"))]
    assert len(both) == len(set(both))  # a drug screened in both releases counted once
    assert set(gdsc2) < set(both)  # and GDSC1's other drugs added
    in_both = set(bulk.drugs("GDSC1")) & set(bulk.drugs("GDSC2"))
    assert in_both & set(both)


def test_a_block_whose_worker_dies_fails_and_the_other_blocks_are_kept():
    import dask

    from scdeal.model import ScDealConfig
    from scdeal.model.cache import MemoryCache
    from scdeal.workflows._screen_engine import dask_client
    from scdeal.workflows._screen_joint import FinishedBlocks, block_key, fit_blocks

    def task(adata, key, config, entries, gene_ids, *, blocks):  # pickled by value
        import os as _os

        if len(blocks[key]) == 2:
            _os._exit(1)
        return {"drug": key, "status": "ok", "block": blocks[key], "model": None,
                "seconds": 1.0}

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            dask_client(None, 1) as client:
        rows = fit_blocks(None, [["A"], ["B", "C"]], ScDealConfig(n_models=2), MemoryCache(),
                          "symbol", client, False, None, FinishedBlocks(None, "screen"),
                          task=task)
    assert rows[block_key(["A"])]["status"] == "ok"
    failed = rows[block_key(["B", "C"])]
    assert failed["status"] == "failed" and "KilledWorker" in failed["reason"]
    assert failed["block"] == ["B", "C"]
