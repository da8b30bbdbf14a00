"""A few labelled cells on the development benchmark (not a test): the K-curve on the 30
simulated GDSC2 drugs x 2 seeds, from the stored per-drug fits (``dev_drugs_current/``).

With labelled cells, ``ScDEAL.fit`` trains the members exactly as without them (the transfer
stays label-free by default) and then combines their mean with a logistic regression on the
labelled cells (:func:`scdeal.model.labelled.fit_stack`). So the K-curve needs no refit: for
each stored fit, the simulated cells are made again (same held-out lines, same simulation
seed; checked against the stored labels), preprocessed and standardised on the
model's genes as the fit did, K cells per class are drawn (nested over K, seeded), and every
method is scored on the remaining cells only:

- ``scdeal``: the combination, as ``fit(labelled=...)`` builds it;
- ``scdeal_label_free``: the stored members' mean (the transfer alone);
- ``logreg_shots`` and ``bulk_plus_shots``: the baselines of ``scdeal benchmark --shots``
  (the bulk without the drug's held-out lines).

Writes ``benchmarks/shots_dev/results.csv`` and ``summary.md``.

    SCDEAL_DATA_DIR=../shared/data/pypi python benchmarks/shots_dev.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

HERE = Path(__file__).resolve().parent
SHOTS = (1, 3, 5, 10)


def cells_of(bulk, drug: str, seed: int, meta: dict):
    """The simulated cells of one development fit, as ``dev_drugs.run_fit`` made them."""
    from scdeal.data.simulate import SimulationConfig, simulate_cells_from_lines

    labels = bulk.labels_for(drug, release="GDSC2")[0].labels.dropna().astype(int)
    rng = np.random.default_rng([seed, 7])
    held = []
    for cls in (1, 0):
        lines = np.sort(labels.index[labels == cls].to_numpy())
        held += list(rng.choice(lines, meta["lines_per_class"], replace=False))
    genes = bulk.expression.var().nlargest(meta["n_genes"]).index
    return simulate_cells_from_lines(
        bulk.expression.loc[held, genes], labels.loc[held],
        SimulationConfig(cells_per_line=meta["cells_per_line"],
                         gene_bias_sd=meta["gene_bias_sd"], seed=seed)), held


def standardised(target, bulk_symbols: list[str]) -> np.ndarray:
    """The cells on the model's genes, as ``ScDEAL._training_data`` makes them."""
    from scdeal.data.preprocess import PreprocessConfig, preprocess_target
    from scdeal.model import prepare as prep

    cells = preprocess_target(prep.target_on_symbols(target, "symbol", "auto"),
                              PreprocessConfig(), copy=False)
    genes = [g for g in bulk_symbols if g in set(cells.var_names)]
    X = prep.dense_float32(cells[:, genes].X)
    return prep.Standardizer.fit(X).transform(X), cells.obs_names


def main() -> int:
    from scdeal.benchmark.baselines import domain_matrices, fit_predict_shots
    from scdeal.benchmark.methods import METHODS
    from scdeal.benchmark.runner import draw_shots
    from scdeal.data import load_gdsc
    from scdeal.model import ScDealConfig
    from scdeal.model.labelled import fit_stack
    from scdeal.model.prepare import bulk_expression_on_symbols
    from scdeal.model.reliability import reliability_diagnostics

    bulk = load_gdsc()
    symbols = list(bulk_expression_on_symbols(bulk)[0].columns)
    rows = []
    for path in sorted((HERE / "dev_drugs_current" / "fits").glob("*.npz")):
        with np.load(path, allow_pickle=False) as npz:
            post, y = npz["post"], npz["y"]
            meta = json.loads(str(npz["meta"]))
            # the label-free verdict the fit would give now (the package's rule)
            reliable = reliability_diagnostics(post, npz["pre"], [
                m["auroc"] for m in meta["bulk_test_metrics_per_model"]])["reliable"]
        target, held = cells_of(bulk, meta["drug"], meta["seed"], meta)
        X, names = standardised(target, symbols)
        # The baselines of `scdeal benchmark --shots`, on the bulk without the held-out lines.
        matrices = domain_matrices(bulk.without_lines(held), meta["drug"], target,
                                   gene_ids="symbol", config=ScDealConfig(release="GDSC2"))
        same = (len(names) == len(y)
                and (target.obs.loc[names, "sensitive"].astype(int).to_numpy() == y).all())
        if not same:
            raise SystemExit(f"{path.name}: the cells made again differ from the stored ones")
        truth = pd.Series(y.astype(float), index=names)
        transfer = post.mean(axis=0)
        for k in SHOTS:
            shots = draw_shots(truth, k, meta["seed"], meta["drug"])
            pos = names.get_indexer(shots.index)
            rest = np.setdiff1d(np.arange(len(y)), pos)
            labels = shots.to_numpy().astype(int)
            stack, report = fit_stack(X[pos], labels, transfer[pos], reference=(X, transfer),
                                      seed=meta["model_seed"], transfer_reliable=reliable)
            stacked = stack.combine(post, X).mean(axis=0)
            baselines = {name: fit_predict_shots(METHODS[name], matrices, shots,
                                                 meta["model_seed"]).reindex(names).to_numpy()
                         for name in ("logreg_shots", "bulk_plus_shots")}
            for method, p in (("scdeal", stacked), ("scdeal_label_free", transfer),
                              *baselines.items()):
                rows.append({"drug": meta["drug"], "seed": meta["seed"], "shots": k,
                             "method": method, "auroc": roc_auc_score(y[rest], p[rest]),
                             "n_scored": len(rest), "weight": report["weight"],
                             "flipped": report["flipped"]})
        print(f"{meta['drug']} seed {meta['seed']}", flush=True)
    table = pd.DataFrame(rows)
    out = HERE / "shots_dev"
    out.mkdir(exist_ok=True)
    table.to_csv(out / "results.csv", index=False, float_format="%.4f")
    means = table.pivot_table(index="method", columns="shots", values="auroc", aggfunc="mean")
    flips = table[table.method == "scdeal"].groupby("shots")["flipped"].sum()
    lines = ["| method | " + " | ".join(f"K={k}" for k in SHOTS) + " |",
             "|---|" + "---|" * len(SHOTS)]
    for method in ("scdeal", "scdeal_label_free", "logreg_shots", "bulk_plus_shots"):
        lines.append(f"| `{method}` | " + " | ".join(f"{means.loc[method, k]:.3f}"
                                                     for k in SHOTS) + " |")
    best = means.loc[["scdeal_label_free", "logreg_shots"]].max()
    lines.append("| scdeal - max(label-free, logreg_shots) | " + " | ".join(
        f"{means.loc['scdeal', k] - best[k]:+.3f}" for k in SHOTS) + " |")
    lines += ["", "Fits whose transfer direction the labelled cells reversed, per K: "
              + ", ".join(f"K={k}: {int(flips[k])}" for k in SHOTS)]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
