# ruff: noqa: E702, E501 - exploratory script, kept as it was run
"""The second round on the development benchmark (benchmarks/README.md section 13): the
transfer's weight kept, halved or zeroed when the label-free rule flags it unreliable. Reads the
cache of shots_dev_candidates.py.

    cd benchmarks && python shots_dev_halving.py
"""
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from scdeal.benchmark.runner import draw_shots
from scdeal.model.labelled import fit_stack
from scdeal.model.reliability import reliability_diagnostics

data = pickle.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/shots_dev_cells.pkl").read_bytes())
pres = {}
for path in sorted((Path(__file__).resolve().parent / "dev_drugs_current" / "fits").glob("*.npz")):
    with np.load(path, allow_pickle=False) as npz:
        m = json.loads(str(npz["meta"])); pres[(m["drug"], m["seed"])] = npz["pre"]
rows = []
for meta, post, y, X, names in data:
    bulk = [m["auroc"] for m in meta["bulk_test_metrics_per_model"]]
    rel = reliability_diagnostics(post, pres[(meta["drug"], meta["seed"])], bulk)["reliable"]
    truth = pd.Series(y.astype(float), index=names); A = post.mean(0)
    for k in (1, 3, 5, 10):
        shots = draw_shots(truth, k, meta["seed"], meta["drug"])
        pos = pd.Index(names).get_indexer(shots.index); lab = shots.to_numpy().astype(int)
        rest = np.setdiff1d(np.arange(len(y)), pos)
        stack, rep = fit_stack(X[pos], lab, A[pos], reference=(X, A), seed=meta["model_seed"])
        base_w = stack.weight
        for name, w in (("K rule", base_w), ("unreliable: w/2", base_w if rel else base_w / 2),
                        ("unreliable: w=0", base_w if rel else 0.0)):
            stack.weight = w
            p = stack.combine(post, X).mean(0)
            rows.append({"k": k, "rule": name, "reliable": rel, "auroc": roc_auc_score(y[rest], p[rest])})
        stack.weight = base_w
t = pd.DataFrame(rows)
print(t.pivot_table(index="rule", columns="k", values="auroc").round(3))
print(t.pivot_table(index=["reliable", "rule"], columns="k", values="auroc").round(3))
print("reliable share", t.groupby("reliable").size() / len(t))
