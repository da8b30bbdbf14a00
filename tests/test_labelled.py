"""A few labelled cells: ``fit(labelled=...)``, ``scdeal run --labelled-key`` and the
``--shots K`` benchmark protocol (cells simulated in the SCAD layout, tiny networks)."""

from __future__ import annotations

import json

import anndata
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from scdeal.benchmark import METHODS, BenchmarkCase, run_benchmark
from scdeal.benchmark.runner import draw_shots, load_case, scored_labels
from scdeal.cli import main
from scdeal.errors import ScdealError
from scdeal.model import ScDEAL, ScDealConfig
from scdeal.model._fitting import cell_split
from scdeal.model.prepare import cell_labels, training_rows

TINY = dict(hidden_dims=(32,), latent_dim=8, predictor_dims=(8,), pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=16, n_models=1,
            seed=5)


def _fit(bulk, cells, **kwargs):
    config = kwargs.pop("config", {})
    model = ScDEAL(ScDealConfig(**{**TINY, **config}), cache=False)
    model.fit(cells.copy(), "Gefitinib", bulk=bulk, gene_ids="entrez", **kwargs)
    return model, model.predict_proba(cells)


def _known(cells, k=4, seed=0):
    """Labels of k cells per class (1.0 / 0.0), indexed by obs name."""
    truth = cells.obs["response"].astype(float)
    return draw_shots(truth, k, seed, "test")


# ------------------------------------------------------------------------------------------
# the model


def test_no_labelled_cells_is_the_fit_of_before(bulk, target_cells):
    plain, p_plain = _fit(bulk, target_cells)
    none, p_none = _fit(bulk, target_cells, labelled=None)
    np.testing.assert_array_equal(p_plain.to_numpy(), p_none.to_numpy())
    assert plain.training["labelled_cells"] is None is none.training["labelled_cells"]
    # the transfer's history has no labelled term without labelled cells
    transfer = [h for h in plain.training["history"] if h["stage"] == "transfer"][0]
    assert "train_labelled_ce" not in transfer


def test_labelled_cells_pull_the_predictions_toward_their_labels(bulk, target_cells,
                                                                transfer_kept):
    # labelled_weight > 0: the labelled cells' cross-entropy joins the transfer loss.
    known = _known(target_cells)
    flipped = 1.0 - known
    in_transfer = {"labelled_weight": 1.0}
    _, p_plain = _fit(bulk, target_cells)
    model, p_true = _fit(bulk, target_cells, labelled=known, config=in_transfer)
    _, p_flip = _fit(bulk, target_cells, labelled=flipped, config=in_transfer)
    assert not np.allclose(p_true.to_numpy(), p_plain.to_numpy())
    summary = model.training["labelled_cells"]
    assert {k: summary[k] for k in ("n", "sensitive", "resistant", "key",
                                    "used_in_model_selection", "members_kept_transfer",
                                    "in_transfer")} == {
        "n": 8, "sensitive": 4, "resistant": 4, "key": None, "used_in_model_selection": False,
        "members_kept_transfer": 1, "in_transfer": True}
    transfer = [h for h in model.training["history"] if h["stage"] == "transfer"][0]
    assert len(transfer["train_labelled_ce"]) == transfer["epochs_run"] - 1  # epoch 0: no step

    def gap(p):  # mean P(sensitive) of the cells labelled sensitive minus the resistant ones
        return p[known.index[known == 1]].mean() - p[known.index[known == 0]].mean()

    # The same cells, labels swapped: each fit moves its labelled cells its own way.
    assert gap(p_true) > gap(p_flip) + 0.1
    # ...and the other cells follow: the true labels rank them better than the swapped ones.
    truth = target_cells.obs["response"].astype(float)
    rest = truth.drop(known.index)
    assert (roc_auc_score(rest, p_true[rest.index])
            > roc_auc_score(rest, p_flip[rest.index]) + 0.05)


def test_labelled_cells_from_an_obs_column_and_label_map(bulk, target_cells):
    cells = target_cells.copy()
    known = _known(cells, k=2)
    cells.obs["known"] = known.map({1.0: "S", 0.0: "R"}).reindex(cells.obs_names)
    model, p_col = _fit(bulk, cells, labelled="known", label_map={"S": 1, "R": 0})
    _, p_series = _fit(bulk, cells, labelled=known)
    assert model.training["labelled_cells"]["key"] == "known"
    np.testing.assert_array_equal(p_col.to_numpy(), p_series.to_numpy())


@pytest.mark.parametrize("make, message", [
    (lambda c: "nope", "labelled='nope' is not a column of obs"),
    (lambda c: pd.Series(1.0, index=c.obs_names[:3]), "needs labelled cells of both classes"),
    (lambda c: pd.Series(np.nan, index=c.obs_names), "labels no cell"),
    (lambda c: pd.Series([1.0, 0.0], index=["c1", "not-a-cell"]), "not cells of the target"),
])
def test_bad_labels_are_one_line_errors(bulk, target_cells, make, message):
    with pytest.raises(ScdealError, match=message) as err:
        _fit(bulk, target_cells, labelled=make(target_cells))
    assert "\n" not in str(err.value)


def test_labels_need_the_transfer_step(bulk, target_cells):
    with pytest.raises(ScdealError, match="transfer=False"):
        _fit(bulk, target_cells, labelled=_known(target_cells), config={"transfer": False})


def test_labelled_cells_removed_by_quality_control_are_refused(bulk):
    from scdeal.data.simulate import demo_target

    cells, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=5)
    empty = cells.obs_names[:2]
    X = np.asarray(cells.X.toarray() if hasattr(cells.X, "toarray") else cells.X).copy()
    X[:2, 20:] = 0  # 20 expressed genes: below min_genes (200)
    cells.X = X
    known = pd.Series([1.0, 0.0, 1.0, 0.0], index=[*empty, *cells.obs_names[10:12]])
    model = ScDEAL(ScDealConfig(**TINY), cache=False)
    with pytest.raises(ScdealError, match="2 of the 4 labelled cells were removed by "
                       "preprocessing.*min_genes"):
        model.fit(cells, "Gefitinib", bulk=bulk.without_lines(held), gene_ids="symbol",
                  labelled=known)


def test_labelled_cells_are_never_held_out_and_always_in_the_training_sample():
    plain_train, plain_val = cell_split(50, 0.2, 100, seed=3)
    train, val = cell_split(50, 0.2, 100, seed=3, labelled=plain_val)
    assert len(val) == len(plain_val) and not np.isin(plain_val, val).any()
    assert np.isin(plain_val, train).all()
    with pytest.raises(ScdealError, match="at least 2 must stay unlabelled"):
        cell_split(10, 0.2, 100, seed=0, labelled=np.arange(9))
    keep = np.array([0, 7, 99_998])
    rows = training_rows(100_000, 500, seed=1, keep=keep)
    assert len(rows) == 500 and np.isin(keep, rows).all() and len(np.unique(rows)) == 500
    np.testing.assert_array_equal(training_rows(100_000, 500, seed=1),
                                  training_rows(100_000, 500, seed=1, keep=np.array([], int)))
    with pytest.raises(ScdealError, match="max_training_cells"):
        training_rows(100, 10, seed=0, keep=np.arange(11))


def test_a_sampled_fit_trains_on_every_labelled_cell(bulk, target_cells):
    known = _known(target_cells, k=3)
    model, _ = _fit(bulk, target_cells, labelled=known, config={"max_training_cells": 20})
    assert model.training["training_sample"] == {"cells": 20, "of": 66}
    assert model.training["labelled_cells"]["n"] == 6


def test_cell_labels_reads_columns_and_series():
    obs = pd.DataFrame({"k": ["sensitive", "", "resistant", None]}, index=list("abcd"))
    assert cell_labels(obs, "k").tolist()[::2] == [1.0, 0.0]
    assert cell_labels(obs, "k").isna().tolist() == [False, True, False, True]
    with pytest.raises(ScdealError, match="not covered by the mapping"):
        cell_labels(obs, "k", {"sensitive": 1})


# ------------------------------------------------------------------------------------------
# the command line


@pytest.fixture(scope="module")
def labelled_table(target_cells, tmp_path_factory):
    """The Gefitinib table with a column of 3 known labels per class."""
    folder = tmp_path_factory.mktemp("labelled")
    known = _known(target_cells, k=3)
    frame = pd.DataFrame(np.asarray(target_cells.X), index=target_cells.obs_names,
                         columns=target_cells.var_names)
    frame["response"] = target_cells.obs["response"].to_numpy()
    frame["known"] = known.reindex(frame.index)
    path = folder / "cells.tsv"
    frame.to_csv(path, sep="\t", index_label="cell")
    config = folder / "tiny.json"
    config.write_text(json.dumps({k: list(v) if isinstance(v, tuple) else v
                                  for k, v in TINY.items() if k != "seed"}))
    return path, config, known


def test_run_with_labelled_key_trains_on_them_and_scores_the_others(
        labelled_table, tmp_path, gdsc_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    path, config, known = labelled_table
    out = tmp_path / "run"
    base = ["--quiet", "run", "--drug", "Gefitinib", "--target", str(path), "--gene-ids",
            "entrez", "--config", str(config), "--out"]
    assert main([*base, str(out), "--labelled-key", "known", "--label-key", "response"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "labelled cells:" in x]
    assert len(line) == 1 and "on the 6 labelled cells, transfer AUROC" in line[0]
    assert "classifier of those cells" in line[0] and "transfer weight 0.62" in line[0]
    run = json.loads((out / "run.json").read_text())
    labelled = run["training"]["labelled_cells"]
    assert {k: labelled[k] for k in ("n", "sensitive", "resistant", "key")} == {
        "n": 6, "sensitive": 3, "resistant": 3, "key": "known"}
    assert labelled["used_in_model_selection"] is False
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scored"] == "cells not in --labelled-key" and metrics["n_cells"] == 66 - 6
    pred = anndata.read_h5ad(out / "predictions.h5ad")
    rest = ~pred.obs_names.isin(known.index)
    assert metrics["auroc"] == pytest.approx(roc_auc_score(
        pred.obs["response"][rest].astype(int), pred.obs["sens_preds"][rest]))
    # the same column for both: nothing would be left to score
    assert main([*base, str(tmp_path / "same"), "--labelled-key", "known", "--label-key",
                 "known"]) == 1
    assert "none is left to score" in capsys.readouterr().err
    assert not (tmp_path / "same").exists()


def test_backed_run_keeps_the_labelled_cells_in_its_sample(
        target_cells, tmp_path, gdsc_data_dir, monkeypatch):
    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    cells = target_cells.copy()
    known = _known(cells, k=3)
    cells.obs["known"] = known.reindex(cells.obs_names).map({1.0: "yes", 0.0: "no"})
    # one --label-map for both columns (--label-key holds 0/1)
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**{k: list(v) if isinstance(v, tuple) else v
                                     for k, v in TINY.items() if k != "seed"},
                                  "max_training_cells": 30}))
    out = tmp_path / "run"
    assert main(["--quiet", "run", "--backed", "--drug", "Gefitinib", "--target", str(path),
                 "--gene-ids", "entrez", "--config", str(config), "--labelled-key", "known",
                 "--label-map", "yes=1,no=0,1=1,0=0", "--label-key", "response", "--out",
                 str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["training"]["training_sample"] == {"cells": 30, "of": 66}
    assert run["training"]["labelled_cells"]["n"] == 6
    assert json.loads((out / "metrics.json").read_text())["n_cells"] == 60


# ------------------------------------------------------------------------------------------
# the --shots protocol


def test_shots_are_nested_seeded_and_refused_when_too_many(target_file):
    case = BenchmarkCase("Gefitinib", "Gefitinib", target_file, "response", "entrez")
    labels = load_case(case).labels
    three, five = (draw_shots(labels, k, 1, "Gefitinib") for k in (3, 5))
    assert three.value_counts().to_dict() == {1.0: 3, 0.0: 3}
    assert set(three.index) <= set(five.index)
    assert not set(draw_shots(labels, 3, 2, "Gefitinib").index) == set(three.index)
    assert not set(draw_shots(labels, 3, 1, "Other").index) == set(three.index)
    assert (three == labels[three.index]).all()  # the true labels of those cells
    assert not scored_labels(labels, three).index.isin(three.index).any()
    with pytest.raises(ScdealError, match="case 'Gefitinib': --shots 33 draws 33 sensitive "
                       "cells but it has 33 sensitive cells"):
        draw_shots(labels, 33, 0, "Gefitinib")


def test_shots_benchmark_never_scores_a_cell_whose_label_was_used(bulk, target_file,
                                                                   monkeypatch):
    import scdeal.benchmark.runner as runner

    case = BenchmarkCase("Gefitinib", "Gefitinib", target_file, "response", "entrez")
    scored, handed = [], []
    real_score, real_fit = runner.score, runner.ScDEAL.fit

    def spy_score(prob, labels):
        scored.append(labels.dropna().index)
        return real_score(prob, labels)

    def spy_fit(self, adata, *args, labelled=None, **kwargs):
        assert list(adata.obs.columns) == []  # labels never travel with the expression
        handed.append(labelled)
        return real_fit(self, adata, *args, labelled=labelled, **kwargs)

    monkeypatch.setattr(runner, "score", spy_score)
    monkeypatch.setattr(runner.ScDEAL, "fit", spy_fit)
    methods = [METHODS[m] for m in ("scdeal", "logreg_shots", "bulk_plus_shots", "logreg")]
    tiny = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items() if k != "seed"}
    table = run_benchmark([case], methods, seeds=[0, 1], bulk=bulk, config_overrides=tiny,
                          shots=3)
    assert (table.error == "").all(), table.error
    assert (table.shots == 3).all() and (table.n_cells == 66 - 6).all()
    is_scdeal = table.method == "scdeal"
    assert table.transfer_kept[is_scdeal].isin([0.0, 1.0]).all()  # one member
    assert table.transfer_kept[~is_scdeal].isna().all()
    labels = load_case(case).labels
    for seed in (0, 1):
        drawn = draw_shots(labels, 3, seed, "Gefitinib")
        given = [h for h in handed if h is not None and set(h.index) == set(drawn.index)]
        assert given and (given[0] == drawn).all()  # scDEAL got exactly those labels
    assert len(handed) == 2 and len(scored) == len(table) == 8
    # Every scored set is all labelled cells minus those drawn for its seed: no cell whose
    # label a method of that seed received is scored.
    complements = {seed: set(labels.dropna().index) - set(draw_shots(labels, 3, seed,
                                                                      "Gefitinib").index)
                   for seed in (0, 1)}
    matched = [[seed for seed, rest in complements.items() if set(index) == rest]
               for index in scored]
    assert all(len(m) == 1 for m in matched)
    assert sorted(m[0] for m in matched) == [0] * 4 + [1] * 4
    assert table.auroc.between(0, 1).all()


def test_shots_zero_is_the_old_protocol_and_bulk_plus_shots_is_logreg(bulk, target_file):
    case = BenchmarkCase("Gefitinib", "Gefitinib", target_file, "response", "entrez")
    methods = [METHODS[m] for m in ("logreg", "bulk_plus_shots", "logreg_shots")]
    table = run_benchmark([case], methods, seeds=[0], bulk=bulk).set_index("method")
    assert "logreg_shots" not in table.index  # undefined without labelled cells: skipped
    assert (table.shots == 0).all() and (table.n_cells == 66).all()
    assert table.loc["bulk_plus_shots", "auroc"] == pytest.approx(table.loc["logreg", "auroc"],
                                                                  abs=1e-6)
    with pytest.raises(ScdealError, match="'Gefitinib'.*40 sensitive.*33 sensitive"):
        run_benchmark([case], methods, seeds=[0], bulk=bulk, shots=40)


def test_benchmark_command_refuses_bad_shots(tmp_path, target_file, gdsc_data_dir, monkeypatch,
                                             capsys):
    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    cases = tmp_path / "cases.toml"
    cases.write_text(f'[[case]]\nname = "Gefitinib"\ndrug = "Gefitinib"\ntarget = "{target_file.name}"\n'
                     'label_key = "response"\ngene_ids = "entrez"\n')
    base = ["benchmark", "--cases", str(cases), "--data-dir", str(target_file.parent), "--methods",
            "logreg_shots", "--jobs", "1", "--seeds", "1", "--out", str(tmp_path / "out")]
    assert main([*base, "--shots", "-1"]) == 1
    assert "--shots must be 0 or more" in capsys.readouterr().err
    assert main([*base, "--shots", "34"]) == 1
    err = capsys.readouterr().err.strip()
    assert "case 'Gefitinib': --shots 34 draws 34 sensitive cells but it has 33" in err
    assert len(err.splitlines()) == 1


def test_run_refuses_before_training_when_the_unlabelled_cells_hold_one_class():
    from scdeal.workflows.run_folder import check_scorable

    obs = pd.DataFrame({"truth": [1, 1, 0, 0], "known": [None, None, 0, 0]}, index=list("abcd"))
    known = cell_labels(obs.assign(known=[1, None, 0, None]), "known")
    check_scorable(obs, "truth", None, known)  # b (1) and d (0) are left: fine
    with pytest.raises(ScdealError, match="have 2 sensitive and 0 resistant labels in 'truth'"):
        check_scorable(obs, "truth", None, pd.Series([np.nan, np.nan, 0.0, 0.0],
                                                     index=obs.index))


# ------------------------------------------------------------------------------------------
# labelled cells stacked with a classifier of their own (the default, labelled_weight=0)


def test_labelled_cells_combine_the_label_free_transfer_with_their_classifier(
        bulk, target_cells, tmp_path):
    from scdeal.model.labelled import fit_stack

    known = _known(target_cells)
    plain, p_plain = _fit(bulk, target_cells)
    model, p = _fit(bulk, target_cells, labelled=known)
    X, names = model.target_matrix(target_cells)
    # The transfer itself is the label-free fit's: its members never saw a label.
    raw, _, _ = model._predict_members(X, pretransfer=False, stacked=False)
    np.testing.assert_allclose(raw.mean(0), p_plain.loc[names].to_numpy(), atol=1e-6)
    # The prediction combines it with the classifier of the labelled cells, as recorded.
    pos = names.get_indexer(known.index)
    reliable = model.reliability["reliable"]
    stack, report = fit_stack(X[pos], known.to_numpy().astype(int), raw.mean(0)[pos],
                              reference=(X, raw.mean(0)), seed=5, transfer_reliable=reliable)
    assert model.training["labelled_cells"]["stack"] == report
    # K = 4: w = 1 / (1 + 4/5), halved when the label-free verdict says unreliable (one
    # member here: no verdict, not halved)
    assert report["per_class"] == 4 and reliable is None
    assert report["weight"] == pytest.approx(1 / (1 + 4 / 5))
    np.testing.assert_allclose(p.loc[names].to_numpy(), stack.combine(raw, X).mean(0),
                               atol=1e-5)
    assert not np.allclose(p.to_numpy(), p_plain.to_numpy())
    # Saved and loaded, the model predicts the same.
    model.save(tmp_path / "model")
    np.testing.assert_allclose(ScDEAL.load(tmp_path / "model").predict_proba(target_cells),
                               p, atol=1e-6)


def test_the_classifier_counts_more_with_more_labels_and_a_reversed_transfer_is_turned():
    from scdeal.model.labelled import fit_stack, leave_one_out

    rng = np.random.default_rng(1)
    y = np.repeat([1, 0], 10)
    X = rng.normal(size=(20, 30)) + 0.8 * y[:, None]
    reference = (X, rng.random(20))
    # leave-one-out: a cell's score never depends on its own label
    first = leave_one_out(X, y)
    changed = y.copy()
    changed[2] = 0
    assert leave_one_out(X, changed)[2] == pytest.approx(first[2])
    weights = [fit_stack(X[idx], y[idx], rng.random(len(idx)), reference=reference)[1]["weight"]
               for idx in (np.r_[0, 10], np.r_[0:3, 10:13], np.r_[0:10, 10:20])]
    assert weights[0] > weights[1] > weights[2]  # K = 1, 3, 10
    idx = np.r_[0:3, 10:13]
    halved = fit_stack(X[idx], y[idx], rng.random(6), reference=reference,
                       transfer_reliable=False)[1]["weight"]
    assert halved == pytest.approx(weights[1] / 2)  # an unreliable transfer counts half
    # A transfer that ranks 3 + 3 labelled cells all the wrong way is reversed; with one
    # labelled cell per class it is not (two cells say too little).
    idx = np.r_[0:3, 10:13]
    _, report = fit_stack(X[idx], y[idx], 1.0 - 0.9 * y[idx], reference=reference)
    assert report["flipped"] and report["transfer_auroc_on_labelled"] == 0.0
    idx = np.r_[0, 10]
    _, report = fit_stack(X[idx], y[idx], 1.0 - 0.9 * y[idx], reference=reference)
    assert not report["flipped"] and report["classifier_auroc_leave_one_out"] is None
