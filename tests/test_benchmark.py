"""The benchmark: metrics against scikit-learn and numpy, case files and their errors, the
method registry, baselines on hand-built data, the summary tables, and a one-seed, one-case,
few-epoch run of ``scdeal benchmark`` on the real Gefitinib SCAD case."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from scdeal.benchmark import (
    METHODS,
    RESULT_COLUMNS,
    Baseline,
    BenchmarkCase,
    RunInfo,
    load_case,
    parse_methods,
    read_cases,
    run_benchmark,
    score,
)
from scdeal.benchmark._memory import PeakMemory, current_rss_mb
from scdeal.benchmark.baselines import DomainMatrices, domain_matrices, fit_predict_baseline
from scdeal.benchmark.report import mean_sd_table, summary_markdown
from scdeal.benchmark.runner import model_seed, seeds_for
from scdeal.cli import main
from scdeal.errors import ScdealError
from scdeal.model import ScDealConfig, classification_metrics

REPO = Path(__file__).resolve().parents[1]
TINY = dict(hidden_dims=[32], latent_dim=8, predictor_dims=[8], pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=64, n_models=2)


# ------------------------------------------------------------------------------------------
# metrics


def _auroc_by_pairs(y, p):
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    pos, neg = p[y == 1], p[y == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn_and_direct_formulas(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.3).astype(int)
    p = np.round(np.clip(0.35 * y + rng.random(300) * 0.7, 0, 1), 2)  # rounding makes ties
    got = classification_metrics(y, p)
    pred = (p >= 0.5).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    assert got["auroc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert got["auroc"] == pytest.approx(_auroc_by_pairs(y, p))
    assert got["ap"] == pytest.approx(skm.average_precision_score(y, p))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label=1))
    assert got["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert got["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert got["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert got["mcc"] == pytest.approx(mcc)
    assert got["balanced_accuracy"] == pytest.approx(0.5 * (tp / (tp + fn) + tn / (tn + fp)))
    assert got["n_cells"] == 300
    assert got["prevalence"] == pytest.approx(y.mean())


def test_metrics_positive_class_is_sensitive():
    # A score that ranks resistant cells first must give AUROC below 0.5, not above.
    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    got = classification_metrics(y, p)
    assert got["auroc"] == 0.0
    assert got["f1"] == 0.0


def test_score_aligns_by_cell_and_skips_missing():
    labels = pd.Series([1.0, 0.0, np.nan, 1.0, 0.0], index=list("abcde"))
    # Shuffled order; b has no prediction, c no label, z is not a labelled cell.
    prob = pd.Series([0.8, 0.9, 0.8, np.nan, 0.7, 0.6], index=list("edcbaz"))
    got = score(prob, labels)
    # Scored: a (sensitive, 0.7), d (sensitive, 0.9), e (resistant, 0.8).
    assert got["n_cells"] == 3
    assert got["prevalence"] == pytest.approx(2 / 3)
    assert got["auroc"] == pytest.approx(0.5)  # one positive above e, one below
    assert got["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1))  # all three called sensitive


# ------------------------------------------------------------------------------------------
# case files


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


CASE = """
[[case]]
name = "{name}"
drug = "Gefitinib"
target = "{target}"
label_key = "response"
gene_ids = "entrez"
"""


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    (folder / "scad").mkdir(parents=True)
    (folder / "scad" / "cells.tsv").write_text("cell\tresponse\t7157\nc1\t1\t0.5\n")
    return folder


def test_read_cases_resolves_targets_against_data_dir(tmp_path, data_dir):
    path = _write(tmp_path / "cases.toml", CASE.format(name="A", target="scad/cells.tsv")
                  + CASE.format(name="B", target=str(data_dir / "scad" / "cells.tsv"))
                  + 'label_map = {yes = 1, no = 0}\n')
    cases = read_cases(path, data_dir=data_dir)
    assert [c.name for c in cases] == ["A", "B"]
    assert cases[0].target == data_dir / "scad" / "cells.tsv"
    assert cases[1].target == data_dir / "scad" / "cells.tsv"  # absolute: used as is
    assert cases[0].gene_ids == "entrez" and cases[0].label_map is None
    assert cases[1].label_map == {"yes": 1, "no": 0}


def test_read_cases_searches_scdeal_data_dir_in_order(tmp_path, data_dir, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    path = _write(tmp_path / "cases.toml", CASE.format(name="A", target="scad/cells.tsv"))
    monkeypatch.setenv("SCDEAL_DATA_DIR", os.pathsep.join([str(empty), str(data_dir)]))
    assert read_cases(path)[0].target == data_dir / "scad" / "cells.tsv"
    monkeypatch.setenv("SCDEAL_DATA_DIR", str(empty))
    with pytest.raises(ScdealError, match="not found in any SCDEAL_DATA_DIR.*--data-dir"):
        read_cases(path)


@pytest.mark.parametrize("text, message", [
    ("[[case]\nname = 1", "not valid TOML"),
    ("title = 'x'", "unknown top-level keys"),
    ("", "lists no cases"),
    ('[[case]]\nname = "A"\ndrug = "Gefitinib"\ntarget = "scad/cells.tsv"\n', "lacks label_key"),
    (CASE.format(name="A", target="scad/cells.tsv") + 'lable_map = "x=1"\n',
     r"unknown keys \['lable_map'\]"),
    (CASE.format(name="A", target="scad/cells.tsv") * 2, "repeated: A"),
    (CASE.format(name="A", target="scad/cells.tsv").replace("entrez", "genbank"),
     "gene_ids must be one of"),
    (CASE.format(name="A", target="scad/cells.tsv") + "label_map = {yes = 2}\n",
     "label_map sends 'yes' to 2"),
    (CASE.format(name="A", target="scad/missing.tsv"), "target file not found: .*missing.tsv"),
    (CASE.format(name="", target="scad/cells.tsv"), "name must be a non-empty string"),
])
def test_bad_case_files_are_refused(tmp_path, data_dir, text, message):
    path = _write(tmp_path / "cases.toml", text)
    with pytest.raises(ScdealError, match=message):
        read_cases(path, data_dir=data_dir)


def test_missing_case_file_and_data_dir(tmp_path, data_dir):
    with pytest.raises(ScdealError, match="case file not found: .*nope.toml"):
        read_cases(tmp_path / "nope.toml", data_dir=data_dir)
    path = _write(tmp_path / "cases.toml", CASE.format(name="A", target="scad/cells.tsv"))
    with pytest.raises(ScdealError, match="data directory not found"):
        read_cases(path, data_dir=tmp_path / "absent")


def test_shipped_case_file_names_the_three_scad_cases(shared_dir):
    cases = read_cases(REPO / "benchmarks" / "cases.toml", data_dir=shared_dir)
    assert [(c.name, c.drug) for c in cases] == [
        ("Gefitinib", "Gefitinib"), ("Afatinib", "Afatinib"), ("PLX4720", "PLX-4720")]
    assert all(c.target.is_file() and c.label_key == "response" and c.gene_ids == "entrez"
               for c in cases)


def test_load_case_keeps_labels_away_from_the_expression(target_file):
    path = target_file
    case = BenchmarkCase("Gefitinib", "Gefitinib", path, "response", "entrez")
    prepared = load_case(case)
    table = pd.read_csv(path, sep="\t", index_col=0)
    assert list(prepared.features.obs.columns) == []
    assert "response" not in prepared.features.var_names
    assert prepared.features.n_vars == table.shape[1] - 1
    expected = table["response"].astype(float)
    expected.index = expected.index.astype(str)
    pd.testing.assert_series_equal(prepared.labels, expected, check_names=False)


def test_load_case_refuses_an_unknown_label_column(target_file):
    case = BenchmarkCase("G", "Gefitinib", target_file, "outcome", "entrez")
    with pytest.raises(ScdealError, match="outcome"):
        load_case(case)


# ------------------------------------------------------------------------------------------
# methods and baselines


def test_method_list_parsing():
    # "all": every method but those that learn from labelled cells, which --shots K adds
    shots = ["scdeal_label_free", "logreg_shots", "bulk_plus_shots"]
    without = [n for n in METHODS if n not in shots]
    assert [m.name for m in parse_methods(None)] == without
    assert [m.name for m in parse_methods("all")] == without
    assert [m.name for m in parse_methods("all", shots=1)] == without + shots
    assert sorted(without + shots) == sorted(METHODS)
    assert [m.name for m in parse_methods(" mlp,scdeal ")] == ["mlp", "scdeal"]
    with pytest.raises(ScdealError, match="unknown method.*svm.*available: scdeal"):
        parse_methods("scdeal,svm")
    with pytest.raises(ScdealError, match="listed twice: logreg"):
        parse_methods("logreg,logreg")


def test_registry_variants_and_shared_fit():
    assert METHODS["scdeal"].fit_key == METHODS["scdeal_no_transfer"].fit_key
    assert METHODS["scdeal_no_transfer"].output == "pre"
    assert METHODS["scdeal"].fit_key == METHODS["scdeal_label_free"].fit_key
    keys = [m.fit_key for n, m in METHODS.items()
            if n.startswith("scdeal") and n not in ("scdeal_no_transfer", "scdeal_label_free")]
    assert len(set(keys)) == len(keys)
    assert dict(METHODS["scdeal_separate"].overrides) == {"n_models": 1, "gene_space": "separate"}
    assert dict(METHODS["scdeal_vae"].overrides) == {"n_models": 1, "extractor": "vae"}
    # Ablations are single models, compared with the single-model reference.
    assert all(dict(m.overrides).get("n_models") == 1 for m in METHODS.values()
               if getattr(m, "ablation", False))
    for method in METHODS.values():
        if hasattr(method, "overrides"):
            ScDealConfig().replace(**method.overrides)  # every variant is a valid configuration
    assert METHODS["random_forest"].make(0).n_estimators == 500
    assert METHODS["random_forest"].make(0).class_weight == "balanced"
    assert METHODS["logreg"].make(0).class_weight == "balanced"
    assert METHODS["mlp"].make(0).early_stopping


@pytest.mark.parametrize("name", ["logreg", "random_forest", "hist_gb", "mlp"])
def test_baselines_return_the_probability_of_sensitive(name):
    # Gene 0 separates the classes in both domains (on different scales); the probability
    # returned must rank sensitive target cells first.
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.2).astype(int)
    X_bulk = rng.standard_normal((300, 20)).astype(np.float32)
    X_bulk[:, 0] += 3 * y
    y_target = np.array([1] * 20 + [0] * 20)
    X_target = rng.standard_normal((40, 20)).astype(np.float32)
    X_target[:, 0] += 3 * y_target
    cells = pd.Index([f"c{i}" for i in range(40)])
    matrices = DomainMatrices(X_bulk, y, X_target, cells, [f"g{i}" for i in range(20)])
    prob = fit_predict_baseline(METHODS[name], matrices, seed=0)
    assert list(prob.index) == list(cells)
    assert prob.between(0, 1).all()
    assert skm.roc_auc_score(y_target, prob) > 0.9


def test_domain_matrices_use_shared_genes_all_labels_and_per_domain_scaling(bulk, target_file):
    from scdeal.data.genes import harmonize_var_names
    from scdeal.model.prepare import bulk_expression_on_symbols

    case = load_case(BenchmarkCase("G", "Gefitinib", target_file, "response",
                                   "entrez"))
    m = domain_matrices(bulk, "Gefitinib", case.features, gene_ids="entrez",
                        config=ScDealConfig())
    labels = bulk.labels_for("Gefitinib")[0].labels.dropna()
    expression, _ = bulk_expression_on_symbols(bulk)
    labels = labels[labels.index.isin(expression.index)]
    target_genes = set(harmonize_var_names(case.features, "entrez").var_names)
    assert m.genes == [g for g in expression.columns if g in target_genes]
    assert len(m.y_bulk) == len(labels) and m.y_bulk.sum() == int(labels.sum())
    assert m.X_bulk.shape == (len(labels), len(m.genes))
    assert m.X_target.shape == (66, len(m.genes))
    for X in (m.X_bulk, m.X_target):
        varying = X.std(axis=0) > 0
        np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(X.std(axis=0)[varying], 1, atol=1e-3)


# ------------------------------------------------------------------------------------------
# runner, memory, report


def test_peak_memory_sees_an_allocation():
    if np.isnan(current_rss_mb()):
        pytest.skip("no /proc/self/statm on this system")
    with PeakMemory() as memory:
        block = np.ones((4096, 8192))  # 256 MiB, touched
        block.sum()
    del block
    assert memory.increase_mb > 200
    assert memory.peak_mb >= memory.start_mb + memory.increase_mb - 1e-6


def _broken(seed):
    raise RuntimeError("boom")


def test_run_records_a_failed_method_and_shares_the_scdeal_fit(bulk, target_file):
    case = BenchmarkCase("Gefitinib", "Gefitinib", target_file, "response", "entrez")
    broken = Baseline("broken", "always fails", _broken)
    methods = [METHODS["scdeal_no_transfer"], broken, METHODS["scdeal"]]
    table = run_benchmark([case], methods, seeds=[1], bulk=bulk, config_overrides=TINY)
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert list(table.method) == ["scdeal_no_transfer", "broken", "scdeal"]
    failed = table.set_index("method").loc["broken"]
    assert failed["error"] == "RuntimeError: boom" and np.isnan(failed["auroc"])
    assert failed["model_seed"] == 1  # a baseline's random_state is the replicate seed
    pair = table[table.method != "broken"]
    assert (pair.error == "").all()
    # both rows of the shared fit carry its label-free verdict; the baseline has none
    assert pair.member_agreement.between(-1, 1).all() and pair.member_agreement.nunique() == 1
    assert pair.reliable.isin([True, False]).all()
    assert np.isnan(failed["member_agreement"]) and pd.isna(failed["reliable"])
    assert (pair.model_seed == 1 * TINY["n_models"]).all()  # replicates share no member
    assert pair.wall_s.nunique() == 1 and (pair.shared_fit == "scdeal_no_transfer,scdeal").all()
    # Scoring only the pre-transfer model skips the transfer; the scores must not change.
    alone = run_benchmark([case], [METHODS["scdeal_no_transfer"]], seeds=[1], bulk=bulk,
                          config_overrides=TINY)
    shared = pair.set_index("method").loc["scdeal_no_transfer"]
    assert alone.loc[0, "auroc"] == pytest.approx(shared["auroc"])
    assert alone.loc[0, "shared_fit"] == ""


def test_worker_processes_give_the_same_rows(bulk, target_file):
    case = BenchmarkCase("Gefitinib", "Gefitinib", target_file, "response", "entrez")
    methods = [METHODS["logreg"], Baseline("broken", "always fails", _broken)]
    inline = run_benchmark([case], methods, seeds=[0], bulk=bulk, jobs=1)
    workers = run_benchmark([case], methods, seeds=[0], bulk=bulk, jobs=2)
    assert list(workers.method) == ["logreg", "broken"]
    assert workers.loc[0, "auroc"] == inline.loc[0, "auroc"]
    assert workers.loc[1, "error"] == "RuntimeError: boom"
    assert workers.loc[0, "peak_rss_mb"] > 0


def test_ablation_variants_run_with_fewer_seeds_and_replicates_do_not_overlap():
    seeds = [0, 1, 2, 3, 4]
    assert seeds_for(METHODS["scdeal_vae"], seeds, 2) == [0, 1]
    assert seeds_for(METHODS["scdeal"], seeds, 2) == seeds
    assert seeds_for(METHODS["scdeal_no_transfer"], seeds, 2) == seeds
    assert seeds_for(METHODS["logreg"], seeds, 2) == seeds
    assert seeds_for(METHODS["scdeal_vae"], seeds, None) == seeds
    config = ScDealConfig(n_models=5)
    members = [set(range(model_seed(r, config), model_seed(r, config) + 5)) for r in seeds]
    assert all(not (members[i] & members[j]) for i in range(5) for j in range(i + 1, 5))


def test_config_overrides_may_not_set_the_seed(bulk, target_file):
    case = BenchmarkCase("G", "Gefitinib", target_file, "response", "entrez")
    with pytest.raises(ScdealError, match="seed"):
        run_benchmark([case], [METHODS["scdeal"]], seeds=[0], bulk=bulk,
                      config_overrides={"seed": 3})


def test_summary_tables_mean_sd_and_order():
    rows = []
    values = {("m1", "A"): [0.6, 0.8], ("m1", "B"): [0.9, 0.7], ("m2", "A"): [0.95, 0.85],
              ("m2", "B"): [0.9, 1.0]}
    for (method, case), aurocs in values.items():
        for seed, auroc in enumerate(aurocs):
            rows.append(dict(case=case, method=method, seed=seed, auroc=auroc, ap=0.5,
                             prevalence=0.5, f1=0.5, f1_weighted=0.5, mcc=0.0,
                             balanced_accuracy=0.5, n_cells=10, wall_s=1.0, peak_mem_mb=2.0,
                             peak_rss_mb=3.0, shared_fit="", model_seed=seed, drug="D",
                             error="", warnings=""))
    table = pd.DataFrame(rows)
    means = mean_sd_table(table, "auroc", ["A", "B"])
    assert means.loc["m1", "A"] == pytest.approx(0.7)
    assert means.loc["m1", "mean"] == pytest.approx((0.7 + 0.8) / 2)
    assert means.loc["m2", "mean"] == pytest.approx((0.9 + 0.95) / 2)
    cases = [BenchmarkCase(c, "D", Path(f"/x/{c}.tsv"), "y") for c in "AB"]
    methods = [Baseline("m1", "first", _broken), Baseline("m2", "second", _broken)]
    text = summary_markdown(table, cases=cases, methods=methods,
                            info=RunInfo("scdeal benchmark --cases x", seeds=[0, 1]))
    auroc_section = text.split("## AUROC")[1].split("##")[0]
    assert auroc_section.index("`m2`") < auroc_section.index("`m1`")  # best first
    sd = np.std([0.6, 0.8], ddof=1)
    assert f"0.700 ± {sd:.3f}" in auroc_section
    assert "Command: `scdeal benchmark --cases x`" in text and "CPU cores" in text
    assert "| `m1` | first |" in text  # the method table


def test_summary_compares_auroc_of_reliable_and_unreliable_rows():
    from scdeal.benchmark.report import reliability_markdown

    table = pd.DataFrame({
        "method": ["scdeal"] * 4 + ["logreg"] * 2,
        "auroc": [0.9, 0.8, 0.4, 0.55, 0.7, 0.6],
        "reliable": [True, True, False, True, np.nan, np.nan],
        "member_consensus": [0.8, 0.7, 0.0, 0.6, np.nan, np.nan]})
    text = "\n".join(reliability_markdown(table, ["A"], ["scdeal", "logreg"]))
    row = [line for line in text.splitlines() if line.startswith("| `scdeal`")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["4", "3 (75%)", "0.750 (0.550-0.900)"]
    assert cells[4] == "0.400 (0.400-0.400)" and cells[5] == "1"  # one reliable row < 0.6
    assert "`logreg`" not in text  # baselines have no verdict


# ------------------------------------------------------------------------------------------
# the command, end to end


def test_benchmark_command_bad_input(tmp_path, capsys, data_dir):
    cases = _write(tmp_path / "cases.toml", CASE.format(name="A", target="scad/cells.tsv"))
    base = ["benchmark", "--cases", str(cases), "--data-dir", str(data_dir), "--out",
            str(tmp_path / "out")]
    assert main([*base, "--methods", "scdeal,knn"]) == 1
    assert "unknown method(s) knn" in capsys.readouterr().err
    assert main([*base, "--config-overrides", "{epochs: 3}"]) == 1
    assert "--config-overrides is not valid JSON" in capsys.readouterr().err
    assert main([*base, "--config-overrides", '{"epochs": 3}']) == 1
    assert "unknown configuration keys ['epochs']" in capsys.readouterr().err
    assert main([*base, "--seeds", "0"]) == 1
    assert "--seeds must be at least 1" in capsys.readouterr().err
    assert main([*base, "--jobs", "0"]) == 1
    assert "--jobs must be at least 1" in capsys.readouterr().err
    assert main([*base, "--ablation-seeds", "0"]) == 1
    assert "--ablation-seeds must be at least 1" in capsys.readouterr().err
    base[2] = str(tmp_path / "missing.toml")
    assert main(base) == 1
    assert "case file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_benchmark_help_lists_every_method(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    listed = text.split("(default: all):")[1].split("--seeds")[0]
    assert [m.strip() for m in listed.split(",")] == list(METHODS)


def test_benchmark_command_end_to_end(tmp_path, target_file, gdsc_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    cases = _write(tmp_path / "cases.toml", CASE.format(name="Gefitinib",
                                                          target=target_file.name))
    out = tmp_path / "bench"
    methods = ["scdeal", "scdeal_no_transfer", "logreg", "mlp"]
    code = main(["benchmark", "--cases", str(cases), "--data-dir", str(target_file.parent),
                 "--methods", ",".join(methods), "--seeds", "1", "--jobs", "1", "--out", str(out),
                 "--config-overrides", json.dumps(TINY)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert printed.count("Gefitinib") >= len(methods)  # one progress line per row
    table = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert list(table.method) == methods and set(table.case) == {"Gefitinib"}
    assert set(table.seed) == {0}
    labels = pd.read_csv(target_file, sep="\t", usecols=["response"])["response"]
    assert (table.n_cells == len(labels)).all()
    assert table.prevalence.to_numpy() == pytest.approx(labels.mean())
    for metric in ("auroc", "ap", "f1", "f1_weighted", "balanced_accuracy"):
        assert table[metric].between(0, 1).all()
    assert table.mcc.between(-1, 1).all()
    assert (table.wall_s > 0).all() and table.peak_rss_mb.notna().all()
    assert table.error.isna().all()
    summary = (out / "summary.md").read_text()
    assert all(f"`{m}`" in summary for m in methods)
    assert "## Reliability" in summary
    assert table.loc[table.method == "scdeal", "member_agreement"].notna().all()
    assert "--seeds 1" in summary and "Versions:" in summary and "1 worker" in summary
    from matplotlib.image import imread

    image = imread(out / "summary.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
