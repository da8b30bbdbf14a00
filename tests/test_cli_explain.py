"""``scdeal run`` -> ``scdeal explain`` -> ``scdeal report`` on a tiny case (real GDSC, cells
simulated in the SCAD layout, gene sets and a TF table written here): every output is written,
the tables agree with each other and with scipy, the HTML is self-contained."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from scdeal.cli import main

TINY = dict(hidden_dims=[32], latent_dim=8, predictor_dims=[8], pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=64, n_models=1,
            seed=4)


@pytest.fixture(scope="module")
def gene_set_files(target_file, tmp_path_factory):
    """A GMT file (40 sets of 60 genes) and a TRRUST-layout TF -> target table (20 TFs of 40
    targets), drawn with a fixed seed from the target's genes (users bring their own files)."""
    from scdeal.data.genes import map_genes

    ids = pd.read_csv(target_file, sep="\t", nrows=0).columns[2:]
    symbols = sorted(set(map_genes(list(ids), id_type="entrez").mapping().values()))
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("gene_sets")
    gmt = folder / "sets.gmt"
    gmt.write_text("".join(f"SET_{i}\tsynthetic\t" + "\t".join(rng.choice(symbols, 60, replace=False))
                           + "\n" for i in range(40)))
    regulons = folder / "regulons.tsv"
    regulons.write_text("".join(f"TF{i}\t{gene}\tActivation\t1\n" for i in range(20)
                                for gene in rng.choice(symbols, 40, replace=False)))
    return gmt, regulons


@pytest.fixture(scope="module")
def run_dir(target_file, gdsc_data_dir, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    folder = tmp_path_factory.mktemp("explain")
    config = folder / "tiny.json"
    config.write_text(json.dumps(TINY))
    run = folder / "run"
    try:
        code = main(["--quiet", "run", "--drug", "Gefitinib", "--target",
                     str(target_file),
                     "--label-key", "response", "--gene-ids", "entrez", "--config",
                     str(config), "--out", str(run)])
    finally:
        mp.undo()
    assert code == 0
    return run


@pytest.fixture(scope="module")
def explained(run_dir, gene_set_files, tmp_path_factory):
    bare = tmp_path_factory.mktemp("bare") / "run"
    shutil.copytree(run_dir, bare)  # a copy without explain outputs, for the report test
    code = main(["--quiet", "explain", "--run", str(run_dir), "--groupby", "response",
                 "--root", "1", "--n-null", "20",
                 "--gmt", str(gene_set_files[0]), "--regulons", str(gene_set_files[1]),
                 "--min-set-size", "3"])
    assert code == 0
    return run_dir, bare


def test_explain_writes_every_output(explained):
    run, _ = explained
    for name in ("attr_integrated_gradient.h5ad", "critical_genes_sensitive.csv",
                 "critical_genes_resistant.csv", "critical_gene_tests.csv", "gene_scores.csv",
                 "gene_score_genes.csv", "gene_score_correlations.csv",
                 "enrichment_sensitive.csv", "enrichment_resistant.csv",
                 "regulators_sensitive.csv", "regulators_resistant.csv", "analysis.h5ad",
                 "trajectory.csv", "trajectory_correlations.csv", "explain.json"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "explain.json").read_text())
    for name in summary["figures"]:
        assert (run / "figures" / f"{name}.png").stat().st_size > 1000
        assert (run / "figures" / f"{name}.pdf").is_file()
    assert {"umap_predictions", "roc_pr", "gene_scores", "trajectory"} <= set(summary["figures"])


def test_attributions_file_and_critical_gene_tables(explained):
    import scanpy as sc

    run, _ = explained
    attr = sc.read_h5ad(run / "attr_integrated_gradient.h5ad")
    assert {"ig_sensitive", "ig_resistant", "input"} <= set(attr.layers)
    assert attr.uns["integrated_gradients"]["passed"]
    tests = pd.read_csv(run / "critical_gene_tests.csv")
    inputs = np.asarray(attr.layers["input"])
    varying = attr.var_names[inputs.max(0) > inputs.min(0)]
    assert len(tests) == len(varying) and set(tests["gene"]) == set(varying)
    sens = attr.obs["sens_label"].astype(int).to_numpy() == 1
    # spot-check one gene's test against scipy
    gene = tests.iloc[0]["gene"]
    values = np.asarray(attr[:, gene].layers["ig_sensitive"]).ravel()
    p = stats.mannwhitneyu(values[sens], values[~sens], method="asymptotic",
                           use_continuity=False).pvalue
    # rel 1e-4: the table runs the test vectorised over all genes; far in the tail (p ~ 1e-7)
    # rounding differences in z grow (measured: 2e-6 relative); a wrong test or correction
    # would be off far more.
    assert tests.iloc[0]["pvalue"] == pytest.approx(p, rel=1e-4)
    assert tests.iloc[0]["pvalue_adj"] == pytest.approx(min(1.0, p * len(varying)), rel=1e-4)
    found = 0
    for direction, sign in (("sensitive", 1), ("resistant", -1)):
        table = pd.read_csv(run / f"critical_genes_{direction}.csv")
        found += len(table)
        assert (table["pvalue_adj"] < 0.05).all() and (table["cohens_d"] > 0.8).all()
        assert (np.sign(table["input_diff"]) == sign).all()
        assert set(table["gene"]) <= set(tests["gene"])
    assert found > 0


def test_gene_scores_and_trajectory_tables_agree(explained):
    run, _ = explained
    cells = pd.read_csv(run / "gene_scores.csv", index_col=0)
    assert {"sens_preds", "rest_preds", "truth", "sensitive_score_pred",
            "resistant_score_true"} <= set(cells.columns)
    corr = pd.read_csv(run / "gene_score_correlations.csv").set_index("direction")
    assert set(corr.index) == {"sensitive", "resistant"}
    for direction, row in corr.iterrows():
        if np.isfinite(row["pearson_r"]):
            pair = cells[[f"{direction}_score_pred", f"{direction}_score_true"]].dropna()
            assert row["pearson_r"] == pytest.approx(stats.pearsonr(*pair.T.to_numpy())[0])
            assert 1 / 21 - 1e-9 <= row["p_empirical"] <= 1 and row["n_null"] == 20
    traj = pd.read_csv(run / "trajectory.csv", index_col=0)
    tc = pd.read_csv(run / "trajectory_correlations.csv").set_index("variable")
    both = traj.join(cells)
    ok = np.isfinite(both["dpt_pseudotime"])
    expected = stats.pearsonr(both.loc[ok, "dpt_pseudotime"], both.loc[ok, "rest_preds"])[0]
    assert tc.loc["rest_preds", "pearson_r"] == pytest.approx(expected, abs=1e-6)
    summary = json.loads((run / "explain.json").read_text())
    root = summary["trajectory"]["root_cell"]
    assert traj.loc[root, "dpt_pseudotime"] == 0 and str(traj.loc[root, "response"]) == "1"


def test_enrichment_tables(explained):
    run, _ = explained
    columns = {"collection", "term", "overlap", "set_size", "pvalue", "pvalue_adj", "genes"}
    tested = 0
    for name in ("enrichment_sensitive", "enrichment_resistant", "regulators_sensitive",
                 "regulators_resistant"):
        table = pd.read_csv(run / f"{name}.csv")
        assert columns <= set(table.columns)
        assert (table["overlap"] >= 1).all() and table["pvalue"].between(0, 1).all()
        assert (table["pvalue_adj"] >= table["pvalue"] - 1e-12).all()
        tested += len(table)
    assert tested > 0


def test_report_is_self_contained(explained):
    run, bare = explained
    assert main(["--quiet", "report", str(run)]) == 0
    page = (run / "report.html").read_text()
    pngs = list((run / "figures").glob("*.png"))
    assert page.count("data:image/png;base64,") == len(pngs) >= 4
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from elsewhere
    assert "Integrated gradients and critical genes" in page and "Trajectory" in page
    # a run folder that was never explained still gets its prediction figures
    assert main(["--quiet", "report", str(bare)]) == 0
    assert (bare / "figures" / "umap_predictions.png").is_file()
    assert (bare / "figures" / "roc_pr.png").is_file()
    assert (bare / "report.html").read_text().count("data:image/png;base64,") == 2


def test_bad_input(explained, tmp_path, capsys):
    run, _ = explained
    assert main(["explain", "--run", str(tmp_path)]) == 1
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["explain", "--run", str(run), "--root", "1"]) == 1
    assert "needs --groupby" in capsys.readouterr().err
    assert main(["explain", "--run", str(run), "--groupby", "cell_color"]) == 1
    assert "'cell_color' is not a column" in capsys.readouterr().err
    assert main(["explain", "--run", str(run), "--gmt", str(tmp_path / "x.gmt")]) == 1
    assert "gene-set file not found" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 1
    assert "holds no run.json" in capsys.readouterr().err
